// graphile-worker's side of `scripts/bench.sh peers`, one step per process so the drain runs
// in a fresh Node process, as Parade's runs in a fresh `parade run`:
//
//   node graphile.mjs enqueue URL JOBS         install the schema, then add JOBS no-op jobs
//   node graphile.mjs drain URL JOBS SIZE      run a worker until JOBS jobs are done
//
// Each prints one JSON line: {"seconds": ..., "jobs": ...}.
//
// enqueue times only the one `addJobs` call (graphile_worker.add_jobs with every job in one
// array, its documented bulk path); connecting and the schema migration come before the clock.
// drain times from just before `run()` (which opens the pool and checks the schema) to the
// resolution of `runner.stop()` after the last job's handler returned; stop() waits for the
// batched completions to be written, so the clock stops once the last job is deleted. The
// worker uses graphile-worker's documented high-throughput settings (docs "Performance"):
// concurrentJobs 24, maxPoolSize 25, completeJobBatchDelay and failJobBatchDelay 0, and
// localQueue.size SIZE (the row of the table).
import { Logger, makeWorkerUtils, run } from "graphile-worker";

// Like graphile-worker's own perfTest: no log line per completed job.
process.env.NO_LOG_SUCCESS = "1";

// Warnings and errors only; graphile-worker logs every start and stop at info.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") console.error(`graphile-worker ${level}: ${message}`);
});

const [command, connectionString, jobsArg, sizeArg] = process.argv.slice(2);
const jobs = Number(jobsArg);
if (!connectionString || !Number.isInteger(jobs) || jobs < 1) {
  console.error("usage: node graphile.mjs enqueue|drain URL JOBS [SIZE]");
  process.exit(2);
}

if (command === "enqueue") {
  const utils = await makeWorkerUtils({ connectionString, logger });
  try {
    await utils.migrate();
    const specs = Array.from({ length: jobs }, () => ({ identifier: "noop", payload: {} }));
    const start = performance.now();
    await utils.addJobs(specs);
    const seconds = (performance.now() - start) / 1000;
    console.log(JSON.stringify({ seconds, jobs }));
  } finally {
    await utils.release();
  }
} else if (command === "drain") {
  const size = Number(sizeArg);
  if (!Number.isInteger(size) || size < 1) {
    console.error("drain: SIZE (localQueue.size) must be a positive integer");
    process.exit(2);
  }
  let done = 0;
  let allDone;
  const finished = new Promise((resolve) => (allDone = resolve));
  const taskList = {
    noop: async () => {
      done += 1;
      if (done === jobs) allDone();
    },
  };
  const start = performance.now();
  const runner = await run({
    logger,
    noHandleSignals: true,
    taskList,
    preset: {
      worker: {
        connectionString,
        concurrentJobs: 24,
        maxPoolSize: 25,
        localQueue: { size },
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
      },
    },
  });
  await finished;
  await runner.stop();
  await runner.promise;
  const seconds = (performance.now() - start) / 1000;
  console.log(JSON.stringify({ seconds, jobs: done }));
} else {
  console.error(`unknown command ${command}: enqueue or drain`);
  process.exit(2);
}
