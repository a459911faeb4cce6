// Builds actor.js into a Parade component: node build.mjs WIT_DIR OUT.wasm
//
// Calls componentize-js's `componentize()` directly (its `jco componentize` command can
// trip on a file-system quirk on some machines).
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const [witPath, out] = process.argv.slice(2);
if (!witPath || !out) {
  console.error('usage: node build.mjs WIT_DIR OUT.wasm');
  process.exit(2);
}
const { component } = await componentize({
  sourcePath: fileURLToPath(new URL('./actor.js', import.meta.url)),
  witPath,
  worldName: 'actor',
  // An actor serves no incoming HTTP.
  disableFeatures: ['fetch-event'],
});
await writeFile(out, component);
