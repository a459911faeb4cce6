// `scripts/bench.sh peers`: Parade against graphile-worker on one PostgreSQL cluster, side by
// side, in one run (issue #21's table). scripts/bench.sh builds and installs everything and
// starts the cluster, then runs
//
//   node peers.mjs [--tasks N] [--rounds N] [--sizes 500,1000,...] [--systems S,...]
//                  [--no-profile] [--no-fairness]
//
// with PARADE_BENCH_DATABASE_URL (the cluster's admin URL), PARADE_BIN (a release `parade`)
// and PARADE_NOOP_WASM (tests/plugins/noop built as a component) in the environment.
//
// For each size (graphile-worker's localQueue.size; Parade's max_tasks and return_batch,
// channel_size twice it) it runs ROUNDS rounds of each system, alternating which goes first.
// A round is: a fresh database, a bulk enqueue of N no-op jobs, a drain, a check that every
// job ran once and none is left, and the database dropped. What is timed:
// - enqueue, graphile-worker: the one addJobs() call (see graphile.mjs);
//   Parade: the whole `parade task add --file` process on a JSON-lines file of N tasks
//   (process start, connecting, checking the file and inserting it 1,000 per transaction).
// - drain, graphile-worker: from before run() to the resolution of stop() after the last job
//   (see graphile.mjs); Parade: the "in X.XXs" that `parade run --until-idle` prints, from
//   the manager's start (the component is loaded and the pool open) until it is idle and
//   closed, its last results written. Neither includes process start or compiling anything.
// Medians of the rounds per row, and each Parade's ÷ graphile-worker of the medians.
// The systems (--systems, graphile first; default all four): graphile-worker;
// `parade` tuned to the row's size; `parade0` the same with `[retention] completed = "0s"`
// (completed tasks deleted as they complete); `untuned` Parade with no [manager] settings but
// its 8 workers (the adaptive batch), whatever the row.
//
// Then, unless --no-fairness, ROUNDS drains of N tasks by two untuned nodes at once on one
// database: each node's share, and their rate together.
//
// Then, unless --no-profile, one more (untimed) round per system per size with
// pg_stat_statements tracking that round's database (the cluster loads the module with
// tracking off otherwise, so the timed rounds pay nothing for it): statements per job,
// execution time and WAL per job, and the statements that took most of the time.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";

const here = dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const options = {
    tasks: 100000,
    rounds: 3,
    sizes: [500, 1000, 2000, 5000, 10000],
    systems: ["graphile", "parade", "parade0", "untuned"],
    profile: true,
    fairness: true,
  };
  for (let i = 0; i < argv.length; i++) {
    const value = () => {
      if (i + 1 >= argv.length) fail(`${argv[i]} needs a value`);
      return argv[++i];
    };
    const positive = (name, text) => {
      const n = Number(text);
      if (!Number.isInteger(n) || n < 1) fail(`${name}: ${text} is not a positive integer`);
      return n;
    };
    switch (argv[i]) {
      case "--tasks": options.tasks = positive("--tasks", value()); break;
      case "--rounds": options.rounds = positive("--rounds", value()); break;
      case "--sizes": options.sizes = value().split(",").map((s) => positive("--sizes", s)); break;
      case "--systems": options.systems = value().split(","); break;
      case "--no-profile": options.profile = false; break;
      case "--no-fairness": options.fairness = false; break;
      default: fail(`unknown argument ${argv[i]}: --tasks N, --rounds N, --sizes A,B,..., --systems S,..., --no-profile, --no-fairness`);
    }
  }
  for (const key of options.systems) {
    if (!["graphile", "parade", "parade0", "untuned"].includes(key)) {
      fail(`--systems: unknown system ${key} (graphile, parade, parade0, untuned)`);
    }
  }
  if (options.systems[0] !== "graphile") fail("--systems: graphile first (the others' ratios are to it)");
  return options;
}

function fail(message) {
  console.error(`bench peers: ${message}`);
  process.exit(2);
}

function env(name) {
  const v = process.env[name];
  if (!v) fail(`set ${name} (scripts/bench.sh peers does)`);
  return v;
}

/** Runs a command to its end; resolves with its stdout and wall time, rejects naming it. */
function runProcess(command, args, extraEnv = {}) {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const child = spawn(command, args, {
      env: { ...process.env, ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => {
      const seconds = (performance.now() - start) / 1000;
      if (code === 0) resolve({ stdout, stderr, seconds });
      else reject(new Error(`${command} ${args.join(" ")} exited with ${code}:\n${stderr}${stdout}`));
    });
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const rate = (jobs, seconds) => Math.round(jobs / seconds);
const fmt = (n) => Math.round(n).toLocaleString("en-US");

const options = parseArgs(process.argv.slice(2));
const adminUrl = env("PARADE_BENCH_DATABASE_URL");
const paradeBin = env("PARADE_BIN");
const noopWasm = env("PARADE_NOOP_WASM");
const nodeBin = process.execPath;

const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
const versions = {
  postgres: (await admin.query("SHOW server_version")).rows[0].server_version,
  graphile: JSON.parse(
    (await import("node:fs")).readFileSync(join(here, "node_modules/graphile-worker/package.json"), "utf8"),
  ).version,
  node: process.version,
  parade: (await runProcess(paradeBin, ["--version"])).stdout.trim(),
};
const profiling =
  options.profile &&
  (await admin.query("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")).rowCount === 1;
if (options.profile && !profiling) {
  console.log("pg_stat_statements is not installed on this cluster: no profile (scripts/bench.sh peers sets it up on its own cluster)");
}

const work = mkdtempSync(join(tmpdir(), "parade-bench-peers."));
process.on("exit", () => rmSync(work, { recursive: true, force: true }));
const tasksFile = join(work, "tasks.jsonl");
writeFileSync(tasksFile, '{"action":"noop"}\n'.repeat(options.tasks));
mkdirSync(join(work, "plugins"));
copyFileSync(noopWasm, join(work, "plugins", "noop.wasm"));

function databaseUrl(name) {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function freshDatabase(name) {
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  return databaseUrl(name);
}

async function dropDatabase(name) {
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

/** Turns pg_stat_statements on for one database's new sessions, statements inside functions
 * too (Parade's own and return are PL/pgSQL functions). */
async function trackStatements(name) {
  await admin.query(`ALTER DATABASE ${name} SET pg_stat_statements.track = 'all'`);
}

async function resetStatements(name) {
  await admin.query(
    "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = $1), 0)",
    [name],
  );
}

async function statements(name) {
  const { rows } = await admin.query(
    `SELECT query, toplevel, calls, total_exec_time, rows, wal_bytes
       FROM pg_stat_statements
      WHERE dbid = (SELECT oid FROM pg_database WHERE datname = $1)
      ORDER BY total_exec_time DESC`,
    [name],
  );
  return rows.map((r) => ({ ...r, calls: Number(r.calls), rows: Number(r.rows), wal_bytes: Number(r.wal_bytes) }));
}

const systems = {
  graphile: {
    label: "graphile-worker",
    async prepare(url) {
      return url;
    },
    async enqueue(url) {
      const { stdout } = await runProcess(nodeBin, [join(here, "graphile.mjs"), "enqueue", url, `${options.tasks}`]);
      return JSON.parse(stdout).seconds;
    },
    async drain(url, size, hooks) {
      await hooks.started();
      const { stdout } = await runProcess(nodeBin, [join(here, "graphile.mjs"), "drain", url, `${options.tasks}`, `${size}`]);
      await hooks.finished();
      const result = JSON.parse(stdout);
      if (result.jobs !== options.tasks) throw new Error(`graphile-worker ran ${result.jobs} of ${options.tasks} jobs`);
      const left = new pg.Client({ connectionString: url });
      await left.connect();
      const { rows } = await left.query("SELECT count(*)::int AS n FROM graphile_worker.jobs");
      await left.end();
      if (rows[0].n !== 0) throw new Error(`graphile-worker left ${rows[0].n} jobs in the queue`);
      return result.seconds;
    },
  },
  parade: paradeSystem("Parade", { tuned: true, completedRetention: null }),
  // Completed tasks deleted as they complete, graphile-worker's model (issue #21).
  parade0: paradeSystem("Parade, completed retention 0s", { tuned: true, completedRetention: "0s" }),
  // The node's defaults: no [manager] settings at all, whatever the row's size.
  untuned: paradeSystem("Parade untuned (defaults)", { tuned: false, completedRetention: null }),
};

/** Parade's side: `tuned` sets max_tasks and return_batch to the row's size (channel_size
 * twice it), `completedRetention` is `[retention] completed` if set. */
function paradeSystem(label, { tuned, completedRetention }) {
  return {
    label,
    async prepare(url) {
      await runProcess(paradeBin, ["migrate"], { PARADE_DATABASE_URL: url });
      return url;
    },
    async enqueue(url) {
      const { stdout, seconds } = await runProcess(paradeBin, ["task", "add", "--file", tasksFile], {
        PARADE_DATABASE_URL: url,
      });
      if (Number(stdout.trim()) !== options.tasks) throw new Error(`parade task add printed ${stdout.trim()}`);
      return seconds;
    },
    async drain(url, size, hooks) {
      const config = join(work, `parade-${size}-${tuned ? "tuned" : "untuned"}-${completedRetention ?? "default"}.toml`);
      writeFileSync(
        config,
        [
          "[plugins]",
          `dir = "${join(work, "plugins")}"`,
          `cache_dir = "${join(work, "cache")}"`,
          "",
          "[manager]",
          "workers = 8",
          ...(tuned ? [`max_tasks = ${size}`, `channel_size = ${2 * size}`, `return_batch = ${size}`] : []),
          ...(completedRetention ? ["", "[retention]", `completed = "${completedRetention}"`] : []),
          "",
        ].join("\n"),
      );
      // Compile the component into the cache first, as a node that restarts finds it.
      await runProcess(paradeBin, ["run", "--check"], { PARADE_CONFIG: config, PARADE_DATABASE_URL: url });
      await hooks.started();
      const { stdout } = await runProcess(paradeBin, ["run", "--until-idle", "--admin", "off"], {
        PARADE_CONFIG: config,
        PARADE_DATABASE_URL: url,
        PARADE_LOG: "warn",
      });
      await hooks.finished();
      const total = stdout.match(/^total\s+(\d+)\s+(\d+)\s+(\d+)/m);
      const elapsed = stdout.match(/^in ([0-9.]+)s$/m);
      if (!total || !elapsed) throw new Error(`cannot read parade run's summary:\n${stdout}`);
      if (Number(total[1]) !== options.tasks || Number(total[2]) !== 0) {
        throw new Error(`parade run completed ${total[1]} and aborted ${total[2]} of ${options.tasks} tasks`);
      }
      const left = new pg.Client({ connectionString: url });
      await left.connect();
      const { rows } = await left.query(
        "SELECT count(*) FILTER (WHERE status_code::text <> 'completed')::int AS n, count(*)::int AS kept FROM tasks",
      );
      await left.end();
      if (rows[0].n !== 0) throw new Error(`Parade left ${rows[0].n} tasks not completed`);
      if (completedRetention === "0s" && rows[0].kept !== 0) {
        throw new Error(`Parade kept ${rows[0].kept} completed tasks with a completed retention of 0s`);
      }
      return Number(elapsed[1]);
    },
  };
}

/** One round of one system: fresh database, enqueue, drain, checks, drop. */
async function round(key, size, index, profile = false) {
  const system = systems[key];
  const name = `peers_${key}_${size}_${index}`;
  const url = await system.prepare(await freshDatabase(name));
  if (profile) await trackStatements(name);
  try {
    const enqueue = await system.enqueue(url);
    let profiled = null;
    const drain = await system.drain(url, size, {
      started: async () => profile && (await resetStatements(name)),
      // Before the round's own checks, which are not the system's statements.
      finished: async () => profile && (profiled = await statements(name)),
    });
    return { enqueue, drain, statements: profiled };
  } finally {
    await dropDatabase(name);
  }
}

console.log(
  `peers: ${fmt(options.tasks)} no-op jobs per round, ${options.rounds} rounds per row alternating, ` +
    `PostgreSQL ${versions.postgres}, graphile-worker ${versions.graphile} on Node ${versions.node} ` +
    `(concurrentJobs 24, maxPoolSize 25, completeJobBatchDelay 0), ${versions.parade} ` +
    `(release, no-op WebAssembly component, 8 workers)`,
);
const rows = [];
for (const size of options.sizes) {
  const drains = Object.fromEntries(options.systems.map((k) => [k, []]));
  const enqueues = Object.fromEntries(options.systems.map((k) => [k, []]));
  for (let r = 0; r < options.rounds; r++) {
    const order = r % 2 === 0 ? options.systems : [...options.systems].reverse();
    for (const key of order) {
      const { enqueue, drain } = await round(key, size, r);
      drains[key].push(rate(options.tasks, drain));
      enqueues[key].push(rate(options.tasks, enqueue));
      console.log(
        `peers: size ${size} round ${r + 1} ${systems[key].label}: drain ${fmt(rate(options.tasks, drain))} jobs/s ` +
          `(${drain.toFixed(2)} s), enqueue ${fmt(rate(options.tasks, enqueue))} jobs/s (${enqueue.toFixed(2)} s)`,
      );
    }
  }
  const row = { size, drain: {}, enqueue: {} };
  for (const key of options.systems) {
    row.drain[key] = median(drains[key]);
    row.enqueue[key] = median(enqueues[key]);
  }
  rows.push(row);
  const others = options.systems.slice(1);
  console.log(
    `peers: size ${size}: drain median graphile-worker ${fmt(row.drain.graphile)} jobs/s` +
      others.map((k) => `, ${systems[k].label} ${fmt(row.drain[k])} jobs/s (÷ graphile ${(row.drain[k] / row.drain.graphile).toFixed(2)})`).join("") +
      ` (load average ${loadavg()[0].toFixed(1)}; rounds: ` +
      options.systems.map((k) => `${k} ${drains[k].map(fmt).join(" ")}`).join("; ") + ")",
  );
}

console.log("");
const others = options.systems.slice(1);
console.log(`| batch / local queue | graphile-worker jobs/s | ${others.map((k) => `${systems[k].label} jobs/s | ÷ graphile`).join(" | ")} |`);
console.log(`| --- | --- | ${others.map(() => "--- | ---").join(" | ")} |`);
for (const row of rows) {
  console.log(
    `| ${fmt(row.size)} | ${fmt(row.drain.graphile)} | ` +
      others.map((k) => `${fmt(row.drain[k])} | ${(row.drain[k] / row.drain.graphile).toFixed(2)}`).join(" | ") + " |",
  );
}
const allEnqueue = (key) => median(rows.map((r) => r.enqueue[key === "parade" ? others[0] : key]));
console.log(
  `peers: bulk enqueue of ${fmt(options.tasks)} jobs, median of the row medians: graphile-worker addJobs ` +
    `${fmt(allEnqueue("graphile"))} jobs/s, Parade task add --file ${fmt(allEnqueue("parade"))} jobs/s, ` +
    `Parade ÷ graphile ${(allEnqueue("parade") / allEnqueue("graphile")).toFixed(2)}`,
);

if (options.fairness) {
  // Two untuned nodes (the defaults, so the adaptive batch) drain one queue together: each
  // node's share of the tasks, and the rate of the two, ROUNDS times.
  console.log("");
  for (let r = 0; r < options.rounds; r++) {
    const name = `peers_fairness_${r}`;
    const url = await systems.untuned.prepare(await freshDatabase(name));
    try {
      await systems.untuned.enqueue(url);
      const config = join(work, "parade-fairness.toml");
      writeFileSync(
        config,
        ["[plugins]", `dir = "${join(work, "plugins")}"`, `cache_dir = "${join(work, "cache")}"`, "", "[manager]", "workers = 8", ""].join("\n"),
      );
      await runProcess(paradeBin, ["run", "--check"], { PARADE_CONFIG: config, PARADE_DATABASE_URL: url });
      const start = performance.now();
      const nodes = await Promise.all(
        ["a", "b"].map(() =>
          runProcess(paradeBin, ["run", "--until-idle", "--admin", "off"], {
            PARADE_CONFIG: config,
            PARADE_DATABASE_URL: url,
            PARADE_LOG: "warn",
          }),
        ),
      );
      const seconds = (performance.now() - start) / 1000;
      const completed = nodes.map(({ stdout }) => {
        const total = stdout.match(/^total\s+(\d+)\s+(\d+)\s+(\d+)/m);
        if (!total) throw new Error(`cannot read parade run's summary:\n${stdout}`);
        return Number(total[1]);
      });
      const all = completed[0] + completed[1];
      if (all !== options.tasks) throw new Error(`the two nodes completed ${all} of ${options.tasks} tasks`);
      console.log(
        `fairness: round ${r + 1}: two untuned nodes, ${fmt(options.tasks)} tasks: node a ${fmt(completed[0])} ` +
          `(${((100 * completed[0]) / all).toFixed(1)}%), node b ${fmt(completed[1])} (${((100 * completed[1]) / all).toFixed(1)}%), ` +
          `${fmt(rate(all, seconds))} jobs/s together (both processes' wall time, start-up included; load average ${loadavg()[0].toFixed(1)})`,
      );
    } finally {
      await dropDatabase(name);
    }
  }
}

if (profiling) {
  console.log("");
  for (const size of options.sizes) {
    for (const key of options.systems) {
      const { drain, statements: stats } = await round(key, size, "profile", true);
      const per = (x) => x / options.tasks;
      // Totals over top-level statements (what the client sent); a nested statement's time
      // and WAL are part of the function call that ran it.
      const top = stats.filter((r) => r.toplevel);
      const calls = top.reduce((s, r) => s + r.calls, 0);
      const time = top.reduce((s, r) => s + r.total_exec_time, 0);
      const wal = top.reduce((s, r) => s + r.wal_bytes, 0);
      console.log(
        `profile: size ${size} ${systems[key].label}: ${(per(calls) * 1000).toFixed(1)} statements per 1,000 jobs, ` +
          `${(per(time) * 1000).toFixed(1)} µs execution per job, ${per(wal).toFixed(0)} WAL bytes per job ` +
          `(drain ${fmt(rate(options.tasks, drain))} jobs/s with tracking on)`,
      );
      for (const s of stats.slice(0, 8)) {
        const query = `${s.toplevel ? "" : "(nested) "}${s.query.replace(/\s+/g, " ")}`.slice(0, 110);
        console.log(
          `profile:   ${(s.total_exec_time / time * 100).toFixed(0).padStart(3)}% ${fmt(s.calls).padStart(7)} calls ` +
            `${((s.total_exec_time / s.calls) * 1000).toFixed(0).padStart(7)} µs/call ` +
            `${(s.rows / s.calls).toFixed(1).padStart(7)} rows/call ${(s.wal_bytes / options.tasks).toFixed(0).padStart(5)} WAL B/job  ${query}`,
        );
      }
    }
  }
}
await admin.end();
