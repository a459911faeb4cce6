// Drives a running node's overview in headless Chromium, as an operator would: reads every
// number its panels show (warnings, limits, schedules, actions, the counts table) and the
// charts' last points, fetches /api/history from the page, then tries each button without
// the token, with a wrong one and with the right one; saves screenshots.
//
//   node overview.mjs ADMIN_URL SCREENSHOT_DIR TOKEN ACTION SCHEDULE
//
// ACTION is an action of the node to pause and resume, SCHEDULE a schedule to run now.
// Prints one JSON object: { counts, warnings, limits, schedules, actions, charts, history,
// unauthorized, wrongToken, pause, resume, runNow, dialogs, urlsWithToken, cookies }.
import { chromium } from "playwright-core";

const [adminUrl, screenshots, token, action, schedule] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const requested = [];
  page.on("request", (request) => requested.push(request.url()));
  const dialogs = [];
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.message());
    dialog.accept();
  });
  await page.goto(adminUrl + "/");
  await page.waitForSelector("body[data-refreshed]", { timeout: 10000 });

  // Everything the panels show, read at one moment (the page is rendered, not refreshed
  // between these reads: each is a DOM query of the same document).
  const read = () =>
    page.evaluate(() => {
      const rows = (selector) => [...document.querySelectorAll(selector)];
      const counts = {};
      for (const cell of rows("#counts td[data-action]")) {
        counts[cell.dataset.action] ??= {};
        counts[cell.dataset.action][cell.dataset.status] = Number(cell.textContent);
      }
      return {
        counts,
        warnings: rows("#warnings tr[data-kind]").map((tr) => ({
          kind: tr.dataset.kind,
          subject: tr.dataset.subject,
          count: tr.dataset.count === undefined ? null : Number(tr.dataset.count),
          text: tr.cells[1].textContent,
        })),
        limits: rows("#limits tr[data-plugin]").map((tr) => ({
          plugin: tr.dataset.plugin,
          scope: tr.dataset.scope,
          in_use: Number(tr.querySelector(".in-use").textContent),
          limit: Number(tr.querySelector(".limit").textContent),
        })),
        schedules: rows("#schedules tr[data-schedule]").map((tr) => ({
          name: tr.dataset.schedule,
          next: tr.querySelector(".next").textContent,
          last: tr.querySelector(".last").textContent,
        })),
        actions: Object.fromEntries(
          rows("#actions tr[data-action]").map((tr) => [
            tr.dataset.action,
            tr.querySelector(".state").textContent,
          ]),
        ),
        charts: Object.fromEntries(
          rows("svg[id^=chart-]").map((svg) => [
            svg.id.slice("chart-".length),
            Object.fromEntries(
              [...svg.querySelectorAll("polyline")].map((line) => [
                line.dataset.series,
                {
                  lastAt: line.dataset.lastAt,
                  last: Number(line.dataset.last),
                  lastCount:
                    line.dataset.lastCount === undefined ? null : Number(line.dataset.lastCount),
                  total: line.dataset.total === undefined ? null : Number(line.dataset.total),
                  points: line.getAttribute("points").trim().split(/\s+/).length,
                },
              ]),
            ),
          ]),
        ),
      };
    });
  const seen = await read();
  seen.history = await page.evaluate(async () => (await fetch("/api/history")).json());
  await page.screenshot({ path: `${screenshots}/overview.png`, fullPage: true });

  // Without a token: no button shows, and the listener refuses each action.
  const visibleButtons = () =>
    page.$$eval("button[data-post]", (buttons) =>
      buttons.filter((b) => b.offsetParent !== null).map((b) => b.dataset.post),
    );
  const unauthorized = {
    tokenEntry: await page.isVisible("#token-entry"),
    buttons: await visibleButtons(),
    statuses: await page.evaluate(
      async ([action, schedule]) => {
        const paths = [
          `/api/action/pause?action=${encodeURIComponent(action)}`,
          `/api/action/resume?action=${encodeURIComponent(action)}`,
          `/api/schedule/run?name=${encodeURIComponent(schedule)}`,
        ];
        const out = {};
        for (const path of paths) out[path] = (await fetch(path, { method: "POST" })).status;
        return out;
      },
      [action, schedule],
    ),
  };

  // Presses the button whose data-post starts with `path`, waits for its answer and for the
  // panels to be re-read after it.
  const press = async (path) => {
    const before = Number((await page.getAttribute("body", "data-operated")) ?? 0);
    await page.click(`button[data-post^="${path}"]`);
    await page.waitForFunction(
      (n) => Number(document.body.dataset.operated ?? 0) > n,
      before,
      { timeout: 10000 },
    );
    const refreshed = await page.getAttribute("body", "data-refreshed");
    await page.waitForFunction(
      (r) => document.body.dataset.refreshed !== r,
      refreshed,
      { timeout: 10000 },
    );
    return {
      answer: await page.textContent("#answer"),
      failed: (await page.getAttribute("#answer", "class")) === "aborted",
      state: (await read()).actions[action],
    };
  };
  const useToken = async (value) => {
    await page.fill("#token", value);
    await page.click("#token-use");
  };
  const pausePath = `/api/action/pause?action=${encodeURIComponent(action)}`;
  const resumePath = `/api/action/resume?action=${encodeURIComponent(action)}`;

  await useToken("not-the-token");
  const wrongToken = await press(pausePath);
  wrongToken.tokenEntryAgain = await page.isVisible("#token-entry");

  await useToken(token);
  const withToken = { tokenEntry: await page.isVisible("#token-entry"), buttons: await visibleButtons() };
  const pause = await press(pausePath);
  await page.screenshot({ path: `${screenshots}/overview-paused.png`, fullPage: true });
  const resume = await press(resumePath);
  const runNow = await press(`/api/schedule/run?name=${encodeURIComponent(schedule)}`);
  await page.screenshot({ path: `${screenshots}/overview-operator.png`, fullPage: true });

  console.log(
    JSON.stringify({
      ...seen,
      unauthorized,
      wrongToken,
      withToken,
      pause,
      resume,
      runNow,
      dialogs,
      tokenKept: (await page.evaluate(() => sessionStorage.getItem("parade-admin-token"))) === token,
      urlsWithToken: requested.filter((url) => url.includes(token)),
      cookies: (await page.context().cookies()).length,
    }),
  );
} finally {
  await browser.close();
}
