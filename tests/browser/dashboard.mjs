// Drives a running node's dashboard in headless Chromium, as a user would: opens the
// overview, waits for its live refresh, reads the counts table, follows the link of a recent
// failure to its task page, reads that page, reads a delayed task's page, then as the
// operator enters the token on a waiting task's page and cancels it; saves screenshots.
//
//   node dashboard.mjs ADMIN_URL SCREENSHOT_DIR TOKEN DELAYED_ID CANCEL_ID
//
// Prints one JSON object:
// { counts: {action: {status: n}}, failures: [ids], task: {...}, delayed: {field: text},
//   cancel: {...} }.
import { chromium } from "playwright-core";

const [adminUrl, screenshots, token, delayedId, cancelId] = process.argv.slice(2);
const fields = (page) =>
  page.$$eval("#task td[data-field]", (cells) =>
    Object.fromEntries(cells.map((c) => [c.dataset.field, c.textContent])),
  );
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(adminUrl + "/");
  // The live refresh has run at least once.
  await page.waitForSelector("body[data-refreshed]", { timeout: 10000 });
  const counts = await page.$$eval("#counts td[data-action]", (cells) => {
    const counts = {};
    for (const cell of cells) {
      counts[cell.dataset.action] ??= {};
      counts[cell.dataset.action][cell.dataset.status] = Number(cell.textContent);
    }
    return counts;
  });
  const failures = await page.$$eval("#failures a", (links) => links.map((a) => a.textContent));
  await page.screenshot({ path: `${screenshots}/dashboard.png`, fullPage: true });

  // Open the first failure's page by clicking its link.
  await page.click("#failures a");
  await page.waitForSelector("#task-id");
  const task = {
    id: await page.textContent("#task-id"),
    fields: await fields(page),
    body: await page.textContent("#body"),
    predecessors: await page.$$eval("#predecessors a", (links) => links.map((a) => a.textContent)),
    successors: await page.$$eval("#successors a", (links) => links.map((a) => a.textContent)),
  };
  // An ended task cannot be cancelled (its page offers retry and delete instead).
  task.operator = (await page.$("#cancel")) !== null;
  await page.screenshot({ path: `${screenshots}/task.png`, fullPage: true });

  await page.goto(`${adminUrl}/task?id=${encodeURIComponent(delayedId)}`);
  const delayed = await fields(page);

  // The operator cancels a waiting task: the token first, then the button, confirmed.
  const requested = [];
  page.on("request", (request) => requested.push(request.url()));
  const dialogs = [];
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.message());
    dialog.accept();
  });
  await page.goto(`${adminUrl}/task?id=${encodeURIComponent(cancelId)}`);
  const visible = async () => ({
    tokenEntry: await page.isVisible("#token-entry"),
    cancel: await page.isVisible("#cancel"),
  });
  const beforeToken = await visible();
  await page.fill("#token", token);
  await page.click("#token-use");
  const afterToken = await visible();
  await page.fill("#cancel-reason", "from the browser");
  await page.click("#cancel");
  await page.waitForSelector("body[data-cancelled]", { timeout: 10000 });
  const cancel = {
    beforeToken,
    afterToken,
    dialogs,
    answer: await page.textContent("#answer"),
    fields: await fields(page),
    cancelShown: await page.isVisible("#cancel"),
    tokenKept: (await page.evaluate(() => sessionStorage.getItem("parade-admin-token"))) === token,
    cookies: (await page.context().cookies()).length,
    urlsWithToken: requested.filter((url) => url.includes(token)),
  };
  await page.screenshot({ path: `${screenshots}/cancel.png`, fullPage: true });
  console.log(JSON.stringify({ counts, failures, task, delayed, cancel }));
} finally {
  await browser.close();
}
