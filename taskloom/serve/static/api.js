// The serve API, with the tenant's key as a header. The key lives in this tab's
// sessionStorage only: never in a URL, a cookie or localStorage.

const KEY_SLOT = 'taskloom.apiKey';

export class ApiError extends Error {
  constructor(status, message, errors) {
    super(message);
    this.status = status;
    this.errors = errors || [];
  }
}

export const apiKey = () => sessionStorage.getItem(KEY_SLOT) || '';
export const setApiKey = (key) => sessionStorage.setItem(KEY_SLOT, key);
export const forgetApiKey = () => sessionStorage.removeItem(KEY_SLOT);

function headers(extra) {
  const all = {...extra};
  const key = apiKey();
  if (key) all.Authorization = `Bearer ${key}`;
  return all;
}

function refused(status, data, fallback) {
  if (status === 401) window.dispatchEvent(new CustomEvent('taskloom:unauthorized'));
  const message = (data && (data.error || data.detail)) || fallback;
  return new ApiError(status, typeof message === 'string' ? message : JSON.stringify(message),
    data && data.errors);
}

export async function api(path, {method = 'GET', body, signal} = {}) {
  const response = await fetch(path, {
    method,
    headers: headers(body === undefined ? {} : {'Content-Type': 'application/json'}),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    cache: 'no-store',
    credentials: 'omit',
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) throw refused(response.status, data, response.statusText);
  return data;
}

const pause = (ms, signal) => new Promise((resolve) => {
  const timer = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, {once: true});
});

function parseEvent(block) {
  const event = {id: null, kind: 'message', data: ''};
  const data = [];
  for (const line of block.split('\n')) {
    if (!line || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'id') event.id = Number(value);
    else if (field === 'event') event.kind = value;
    else if (field === 'data') data.push(value);
  }
  if (!data.length) return null;
  event.data = JSON.parse(data.join('\n'));
  return event;
}

// A run's Server-Sent Events over fetch() (EventSource cannot send the key as a
// header). A dropped stream is reopened with Last-Event-ID, so no event is missed or
// seen twice. Resolves after the `result` event, or when `signal` aborts.
export async function streamEvents(runId, onEvent, signal) {
  let last = 0;
  while (!signal.aborted) {
    try {
      const response = await fetch(`/v1/runs/${encodeURIComponent(runId)}/events`, {
        headers: headers({'Last-Event-ID': String(last), Accept: 'text/event-stream'}),
        signal, cache: 'no-store', credentials: 'omit',
      });
      if (response.status === 401 || response.status === 404) {
        throw refused(response.status, await response.json().catch(() => null), 'refused');
      }
      if (!response.ok || !response.body) throw new Error(`event stream: ${response.status}`);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, '\n');
        let cut;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const event = parseEvent(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (event === null) continue;
          if (event.id !== null) last = event.id;
          onEvent(event);
          if (event.kind === 'result') return;
        }
      }
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiError) throw error;
    }
    await pause(1000, signal);
  }
}

// Calls `tick` now and every `ms` until the returned stop function is called; a tick
// still running when the next is due is not started twice.
export function every(ms, tick) {
  let stopped = false;
  let timer = null;
  const loop = async () => {
    try { await tick(); } catch (error) { if (!(error instanceof ApiError)) console.error(error); }
    if (!stopped) timer = setTimeout(loop, ms);
  };
  loop();
  return () => { stopped = true; clearTimeout(timer); };
}
