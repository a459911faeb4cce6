// A task page's operator controls: cancel the task. The operator enters the node's
// [admin] token once per tab; it is kept in this tab's sessionStorage (never in a URL or a
// cookie) and sent only as an Authorization: Bearer header. The Cancel button shows once a
// token is entered, asks for confirmation, and shows the listener's answer.
(() => {
  const KEY = "parade-admin-token";
  const $ = (id) => document.getElementById(id);
  const task = $("operator").dataset.task;
  const answer = $("answer");

  function show() {
    const token = sessionStorage.getItem(KEY);
    $("token-entry").hidden = Boolean(token);
    $("cancel-box").hidden = !token;
  }

  function say(text, failed) {
    answer.textContent = text;
    answer.className = failed ? "aborted" : "";
  }

  function describe(t) {
    if (t.outcome === "already-ended") return `already ended as ${t.status_code}`;
    if (t.outcome === "cancelled" && t.cascade) return "cancelled (cascade)";
    return t.outcome.replace("-", " ");
  }

  // The fields the cancel changed, re-read from the store.
  async function refreshFields() {
    const view = await (await fetch("/api/task?id=" + encodeURIComponent(task))).json();
    const field = (name) => document.querySelector(`#task td[data-field="${name}"]`);
    field("status code").textContent = view.task.status_code;
    field("status").textContent = view.task.status ?? "";
    const node = document.querySelector(".graph .node");
    if (node) node.className = `node ${view.task.status_code}`;
    for (const name of ["due", "deadline"]) field(name)?.parentElement.remove();
  }

  $("token-use").addEventListener("click", () => {
    const token = $("token").value;
    $("token").value = "";
    if (token) sessionStorage.setItem(KEY, token);
    show();
  });
  $("token").addEventListener("keydown", (e) => {
    if (e.key === "Enter") $("token-use").click();
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    show();
  });
  $("cancel").addEventListener("click", async () => {
    const cascade = $("cancel-cascade").checked;
    const what = cascade ? `task ${task} and every task waiting on it` : `task ${task}`;
    if (!confirm(`Cancel ${what}? It ends aborted and is not run again.`)) return;
    const query = new URLSearchParams({ id: task, reason: $("cancel-reason").value });
    if (cascade) query.set("cascade", "true");
    try {
      const response = await fetch("/api/task/cancel?" + query, {
        method: "POST",
        headers: { Authorization: "Bearer " + sessionStorage.getItem(KEY) },
      });
      const body = await response.json();
      if (!response.ok) {
        if (response.status === 401) {
          // A wrong token is forgotten, so the entry shows again.
          sessionStorage.removeItem(KEY);
          show();
        }
        say(body.error ?? `the listener answered ${response.status}`, true);
        return;
      }
      say(body.tasks.map((t) => `${t.id}: ${describe(t)}`).join("; "), false);
      $("cancel-box").hidden = true;
      await refreshFields();
      document.body.dataset.cancelled = "true";
    } catch (e) {
      say(`cancel failed: ${e}`, true);
    }
  });
  show();
})();
