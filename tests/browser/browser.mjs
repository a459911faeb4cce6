// Drives a running node's task browser and task pages in headless Chromium, as an operator
// would: pages through every task of one action by clicking "older", filters with the
// form (state, action and id prefix) and by enqueue time, opens a task from the list and
// reads its DAG, then works the task page's buttons (Retry, Delete, Cancel) first with a
// wrong token and then with the right one; saves screenshots.
//
//   node browser.mjs ADMIN_URL SCREENSHOT_DIR TOKEN ARGS_JSON
//
// ARGS_JSON: {bulkAction, pageSize, dagAction, dagPrefix, dagTask, from, to, retryId,
// deleteId, cancelId}. Prints one JSON object: {paged, filters, dag, buttons}.
import { chromium } from "playwright-core";

const [adminUrl, screenshots, token, argsJson] = process.argv.slice(2);
const args = JSON.parse(argsJson);
const rowIds = (page) =>
  page.$$eval("#tasks tbody tr[data-id]", (rows) => rows.map((r) => r.dataset.id));
const rowStates = (page) =>
  page.$$eval("#tasks tbody tr[data-id]", (rows) =>
    Object.fromEntries(rows.map((r) => [r.dataset.id, r.dataset.state])),
  );

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const requested = [];
  page.on("request", (request) => requested.push(request.url()));
  const dialogs = [];
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.message());
    dialog.accept();
  });

  // Every task of one action, page after page, by the "older" link.
  await page.goto(`${adminUrl}/tasks?action=${args.bulkAction}&limit=${args.pageSize}`);
  await page.screenshot({ path: `${screenshots}/tasks.png` });
  const paged = { ids: [], pages: 0, sizes: [] };
  for (;;) {
    const ids = await rowIds(page);
    paged.ids.push(...ids);
    paged.sizes.push(ids.length);
    paged.pages += 1;
    const older = await page.$("#older");
    if (!older) break;
    await Promise.all([page.waitForNavigation(), older.click()]);
  }
  paged.endShown = await page.isVisible("#end");

  // The form: a state, then an action and an id prefix together.
  const filters = {};
  await page.goto(`${adminUrl}/tasks`);
  for (const state of ["waiting", "delayed", "pending", "in-progress", "completed", "aborted"]) {
    await page.selectOption("select[name=state]", state);
    await Promise.all([page.waitForNavigation(), page.click("#filter")]);
    filters[state] = await rowStates(page);
  }
  await page.selectOption("select[name=state]", "");
  await page.fill("input[name=action]", args.dagAction);
  await page.fill("input[name=id]", args.dagPrefix);
  await Promise.all([page.waitForNavigation(), page.click("#filter")]);
  filters.actionAndPrefix = await rowIds(page);
  filters.actionAndPrefixUrl = page.url();
  await page.screenshot({ path: `${screenshots}/tasks-filtered.png` });
  // Enqueue time: the window the test gives, as a link would carry it.
  await page.goto(
    `${adminUrl}/tasks?from=${encodeURIComponent(args.from)}&to=${encodeURIComponent(args.to)}`,
  );
  filters.timeRange = await rowIds(page);
  filters.fromField = await page.inputValue("input[name=from]");

  // Open a task from the list, and read its DAG.
  await page.goto(`${adminUrl}/tasks?action=${encodeURIComponent(args.dagAction)}`);
  await Promise.all([
    page.waitForNavigation(),
    page.click(`#tasks tr[data-id="${args.dagTask}"] a`),
  ]);
  const dag = {
    url: page.url(),
    id: await page.textContent("#task-id"),
    nodes: await page.$$eval("#dag g.dag-node", (nodes) =>
      nodes.map((n) => ({ id: n.dataset.id, state: n.dataset.state, depth: Number(n.dataset.depth) })),
    ),
    edges: await page.$$eval("#dag path.dag-edge", (edges) =>
      edges.map((e) => [e.dataset.from, e.dataset.to]),
    ),
    more: await page.isVisible("#dag-more"),
    legend: await page.textContent("#dag-legend"),
  };
  await page.screenshot({ path: `${screenshots}/task-dag.png`, fullPage: true });

  // The buttons: hidden until a token is entered; a wrong token refused (and forgotten),
  // the right one obeyed.
  const visible = async (ids) =>
    Object.fromEntries(await Promise.all(ids.map(async (id) => [id, await page.isVisible(`#${id}`)])));
  const enter = async (value) => {
    await page.fill("#token", value);
    await page.click("#token-use");
  };
  const operated = () => page.evaluate(() => Number(document.body.dataset.operated ?? 0));
  // Clicks a data-post button and waits for its answer.
  const press = async (id) => {
    const before = await operated();
    await page.click(`#${id}`);
    await page.waitForFunction((n) => Number(document.body.dataset.operated ?? 0) > n, before);
    return page.textContent("#answer");
  };
  const buttons = {};

  await page.goto(`${adminUrl}/task?id=${encodeURIComponent(args.retryId)}`);
  buttons.retryBeforeToken = await visible(["token-entry", "retry", "delete", "cancel"]);
  await enter("not-the-token");
  buttons.retryWrong = await press("retry");
  buttons.retryAfterWrong = await visible(["token-entry", "retry"]);
  await enter(token);
  buttons.retryWithToken = await visible(["token-entry", "retry", "delete", "cancel"]);
  buttons.retry = await press("retry");
  await page.waitForSelector("body[data-state=pending]");
  buttons.retryFields = {
    state: await page.textContent('#task td[data-field="state"]'),
    retryShown: await page.isVisible("#retry"),
  };
  await page.screenshot({ path: `${screenshots}/retry.png`, fullPage: true });

  // The token is kept for the tab: the next page shows the buttons at once.
  await page.goto(`${adminUrl}/task?id=${encodeURIComponent(args.deleteId)}`);
  buttons.deleteWithKeptToken = await visible(["token-entry", "delete", "retry"]);
  await page.evaluate(() => sessionStorage.setItem("parade-admin-token", "stale"));
  buttons.deleteWrong = await press("delete");
  await enter(token);
  buttons.delete = await press("delete");
  await page.waitForSelector("body[data-deleted]");
  buttons.deletedButtons = await visible(["delete", "retry"]);

  await page.goto(`${adminUrl}/task?id=${encodeURIComponent(args.cancelId)}`);
  buttons.cancelBefore = {
    state: await page.textContent('#task td[data-field="state"]'),
    ...(await visible(["cancel", "retry", "delete"])),
  };
  await page.evaluate(() => sessionStorage.setItem("parade-admin-token", "stale"));
  await page.reload();
  await page.click("#cancel");
  await page.waitForSelector("#token-entry:not([hidden])");
  buttons.cancelWrong = await page.textContent("#answer");
  await enter(token);
  await page.fill("#cancel-reason", "stopped from the page");
  await page.click("#cancel");
  await page.waitForSelector("body[data-cancelled]");
  await page.waitForSelector("body[data-state=aborted]");
  buttons.cancel = await page.textContent("#answer");
  buttons.cancelAfter = {
    state: await page.textContent('#task td[data-field="state"]'),
    ...(await visible(["cancel", "retry", "delete"])),
  };
  await page.screenshot({ path: `${screenshots}/cancel-running.png`, fullPage: true });

  buttons.dialogs = dialogs;
  buttons.cookies = (await page.context().cookies()).length;
  buttons.urlsWithToken = requested.filter((url) => url.includes(token));
  console.log(JSON.stringify({ paged, filters, dag, buttons }));
} finally {
  await browser.close();
}
