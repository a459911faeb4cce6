// http-get: a Parade actor in JavaScript, built with componentize-js.
//
// GETs the URL in the task's body (`{"url": "http://..."}`) with `fetch` and reports the
// response: status, content type, size and the first line of the body. The host must be in
// the plugin's `allowed_hosts`. A server error or a network failure leaves the task pending,
// to try again in 10 s (`retryAfterMs`, a u64, is a BigInt); a client error aborts it.
import { log } from 'parade:actor/host@0.2.0';

// How long a failed GET waits before its next try.
const RETRY_AFTER_MS = 10_000n;

export function actions() {
  return ['http-get'];
}

// componentize-js runs the event loop until the returned promise settles, so a sync WIT
// export may be an async function.
export async function handle(action, body, signalledFailures) {
  let url;
  try {
    url = new URL(JSON.parse(body ?? '{}').url);
  } catch (e) {
    return { status: `bad body: expected {"url": "http://..."} (${e})`, code: 'aborted' };
  }
  let response, text;
  try {
    response = await fetch(url);
    text = await response.text();
  } catch (e) {
    // fetch reports every failure as the same NetworkError; the node's log says why.
    return {
      status: `GET ${url} failed: ${e.message} (the node's log says why: a refused host is ` +
        'logged as "outbound HTTP refused")',
      code: 'pending',
      retryAfterMs: RETRY_AFTER_MS,
    };
  }
  const firstLine = text.split('\n', 1)[0].slice(0, 200);
  log('info', `GET ${url}: ${response.status}`);
  const status = `HTTP ${response.status}, ${response.headers.get('content-type') ?? 'no content type'}, ` +
    `${new TextEncoder().encode(text).length} bytes: ${firstLine}`;
  if (response.ok) return { status, code: 'completed' };
  if (response.status >= 500) return { status, code: 'pending', retryAfterMs: RETRY_AFTER_MS };
  return { status, code: 'aborted' };
}
