// A task's page after an operator's answer (operator.js calls window.paradeRefresh): re-reads
// the task and shows what changed, without reloading (which would drop the answer). The
// buttons that no longer apply hide: Cancel once the task has ended, Retry unless it is
// aborted, all of them once it is deleted.
(() => {
  const $ = (id) => document.getElementById(id);
  const task = $("operator").dataset.task;
  window.paradeRefresh = async () => {
    const response = await fetch("/api/task?id=" + encodeURIComponent(task));
    if (response.status === 404) {
      $("token-held").remove();
      document.body.dataset.deleted = "true";
      document.querySelector("h1").append(" (deleted)");
      return;
    }
    const view = await response.json();
    const field = (name) => document.querySelector(`#task td[data-field="${name}"]`);
    field("state").textContent = view.state;
    field("status code").textContent = view.task.status_code;
    field("status").textContent = view.task.status ?? "";
    field("tries").textContent =
      view.task.max_tries == null
        ? String(view.task.num_tries)
        : `${view.task.num_tries} of ${view.task.max_tries}`;
    if (view.state !== "in-progress") {
      for (const name of ["owner", "deadline"]) field(name)?.parentElement.remove();
    }
    if (view.state !== "delayed") field("due")?.parentElement.remove();
    $("retry-box").hidden = view.state !== "aborted";
    if ($("cancel-box") && ["completed", "aborted"].includes(view.state)) {
      $("cancel-box").remove();
    }
    const root = document.querySelector(`#dag g.dag-node[data-id="${CSS.escape(task)}"]`);
    if (root) root.dataset.state = view.state;
    document.body.dataset.state = view.state;
  };
})();
