// {{name}}: a Parade actor in JavaScript, built with componentize-js (`parade plugin build`
// runs `node build.mjs wit {{name}}.wasm`).
import { log, taskId, tryNumber } from 'parade:actor/host@{{version}}';

export function actions() {
  return ['{{name}}'];
}

export function handle(action, body, signalledFailures) {
  const text = body ?? '';
  const bytes = new TextEncoder().encode(text).length;
  log('info', `${action}: task ${taskId()} (try ${tryNumber()}), ${bytes} bytes of body`);
  return { status: `${action} done: ${text}`, code: 'completed' };
}
