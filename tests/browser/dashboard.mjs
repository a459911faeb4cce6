// Drives a running node's dashboard in headless Chromium, as a user would: opens the
// overview, waits for its live refresh, reads the counts table, follows the link of a recent
// failure to its task page, reads that page, and saves screenshots of both.
//
//   node dashboard.mjs ADMIN_URL SCREENSHOT_DIR
//
// Prints one JSON object: { counts: {action: {status: n}}, failures: [ids], task: {...} }.
import { chromium } from "playwright-core";

const [adminUrl, screenshots] = process.argv.slice(2);
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
    fields: await page.$$eval("#task td[data-field]", (cells) =>
      Object.fromEntries(cells.map((c) => [c.dataset.field, c.textContent])),
    ),
    body: await page.textContent("#body"),
    predecessors: await page.$$eval("#predecessors a", (links) => links.map((a) => a.textContent)),
    successors: await page.$$eval("#successors a", (links) => links.map((a) => a.textContent)),
  };
  await page.screenshot({ path: `${screenshots}/task.png`, fullPage: true });
  console.log(JSON.stringify({ counts, failures, task }));
} finally {
  await browser.close();
}
