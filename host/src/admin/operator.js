// The operator's controls, on the overview and on a task's page. The operator enters the
// node's [admin] token once per tab; it is kept in this tab's sessionStorage (never in a URL
// or a cookie) and sent only as an Authorization: Bearer header. The buttons show once a
// token is entered (body.operator), each asks for confirmation and shows the listener's
// answer in #answer.
//
// Its interface, for the pages that use it: #operator holds #token-entry (with #token and
// #token-use), optionally #token-forget, #token-held (shown while a token is kept) and
// #answer. Any button[data-post] (also one added later, as live.js re-renders the panels)
// confirms data-confirm and POSTs to data-post; body.dataset.operated counts the answers
// and body.dataset.answer holds the last. On a task's page (#operator[data-task]),
// #cancel-box holds its Cancel button.
(() => {
  const KEY = "parade-admin-token";
  const $ = (id) => document.getElementById(id);
  const task = $("operator").dataset.task;
  const answer = $("answer");

  function show() {
    const token = sessionStorage.getItem(KEY);
    $("token-entry").hidden = Boolean(token);
    for (const id of ["cancel-box", "token-held"]) {
      if ($(id)) $(id).hidden = !token;
    }
    document.body.classList.toggle("operator", Boolean(token));
  }

  // POSTs `path` with the token; the answer's JSON, or null after saying what failed.
  async function post(path) {
    const response = await fetch(path, {
      method: "POST",
      headers: { Authorization: "Bearer " + (sessionStorage.getItem(KEY) ?? "") },
    });
    const body = await response.json();
    if (!response.ok) {
      if (response.status === 401) {
        // A wrong token is forgotten, so the entry shows again.
        sessionStorage.removeItem(KEY);
        show();
      }
      say(body.error ?? `the listener answered ${response.status}`, true);
      return null;
    }
    return body;
  }

  document.addEventListener("click", async (e) => {
    const button = e.target.closest("button[data-post]");
    if (!button) return;
    if (!confirm(button.dataset.confirm)) return;
    try {
      const body = await post(button.dataset.post);
      if (body) say(body.ok, false);
    } catch (e) {
      say(`${button.textContent} failed: ${e}`, true);
    }
    document.body.dataset.answer = answer.textContent;
    document.body.dataset.operated = String(Number(document.body.dataset.operated ?? 0) + 1);
    window.paradeRefresh?.();
  });

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
  $("token-forget")?.addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    show();
  });
  $("cancel")?.addEventListener("click", async () => {
    const cascade = $("cancel-cascade").checked;
    const what = cascade ? `task ${task} and every task waiting on it` : `task ${task}`;
    if (!confirm(`Cancel ${what}? It ends aborted and is not run again.`)) return;
    const query = new URLSearchParams({ id: task, reason: $("cancel-reason").value });
    if (cascade) query.set("cascade", "true");
    try {
      const body = await post("/api/task/cancel?" + query);
      if (!body) return;
      say(body.tasks.map((t) => `${t.id}: ${describe(t)}`).join("; "), false);
      $("cancel-box").hidden = true;
      await refreshFields();
      await window.paradeRefresh?.();
      document.body.dataset.cancelled = "true";
    } catch (e) {
      say(`cancel failed: ${e}`, true);
    }
  });
  show();
})();
