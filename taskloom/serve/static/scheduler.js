// The scheduler panel: the shared schedulers' live counters from GET /v1/scheduler
// (summed over every tenant; no other tenant's run is named there), with a short
// history of calls waiting and running.
import {api, every} from './api.js';
import {count, el, fill, svg} from './dom.js';

const POLL_MS = 1000;
const HISTORY = 90; // samples kept: one a second

function spark(history) {
  const width = 240;
  const height = 48;
  const top = Math.max(1, ...history.map(([queued, running]) => Math.max(queued, running)));
  const line = (pick) => history.map((sample, index) => {
    const x = (width * index) / Math.max(1, HISTORY - 1);
    const y = height - 2 - ((height - 4) * pick(sample)) / top;
    return `${x.toFixed(1)},${y.toFixed(1)}`;
  }).join(' ');
  return svg('svg', {class: 'spark', width, height, viewBox: `0 0 ${width} ${height}`,
    role: 'img', 'aria-label': 'calls waiting and running, last 90 s'},
  svg('polyline', {class: 'spark-running', points: line((sample) => sample[1])}),
  svg('polyline', {class: 'spark-queued', points: line((sample) => sample[0])}),
  svg('text', {x: width - 2, y: 10, 'text-anchor': 'end', class: 'spark-top', text: String(top)}));
}

function stat(label, value, id) {
  return el('div', {class: 'stat', id}, el('span', {class: 'value', text: value}),
    el('span', {class: 'label', text: label}));
}

function policyCard(policy) {
  if (!policy.counters) {
    return el('div', {class: 'policy'}, el('h3', {text: policy.policy}),
      el('p', {class: 'muted small', text: 'This scheduler keeps no counters.'}));
  }
  const top = Math.max(1, ...policy.queued_per_level);
  return el('div', {class: 'policy', 'data-policy': policy.policy},
    el('h3', {text: `policy ${policy.policy}`}),
    el('div', {class: 'stats'},
      stat('waiting', count(policy.queued)),
      stat('running', count(policy.running)),
      stat('preempted', count(policy.preemptions)),
      stat('prefix hits', `${(100 * policy.prefix_hit_rate).toFixed(0)}%`)),
    el('h4', {text: 'calls waiting per level'}),
    el('div', {class: 'levels'}, policy.queued_per_level.map((size, level) =>
      el('div', {class: 'level'}, el('span', {class: 'label', text: `L${level}`}),
        el('span', {class: 'meter'}, el('span', {class: 'fill',
          style: {width: `${(100 * size) / top}%`}})),
        el('span', {class: 'num', text: count(size)})))),
    el('h4', {text: 'engines'}),
    el('table', {class: 'engines'},
      el('thead', {}, el('tr', {}, ['#', 'in flight', 'done', 'preempted', 'prefix hits']
        .map((name) => el('th', {text: name})))),
      el('tbody', {}, policy.engines.map((engine) => el('tr', {class: engine.alive ? '' : 'dead'},
        el('td', {text: String(engine.engine)}),
        el('td', {class: 'num', text: engine.in_flight === null ? '' : count(engine.in_flight)}),
        el('td', {class: 'num', text: count(engine.finished_calls)}),
        el('td', {class: 'num', text: count(engine.preemptions)}),
        el('td', {class: 'num', text: `${(100 * engine.prefix_hit_rate).toFixed(0)}%`}))))),
    el('p', {class: 'muted small',
      text: `${count(policy.demotions)} demoted, ${count(policy.promotions)} promoted (anti-starvation)`}));
}

export function schedulerPanel(root) {
  const history = [];
  const body = el('div', {id: 'scheduler-body'});
  root.replaceChildren(el('h2', {text: 'Scheduler'}), body);
  return every(POLL_MS, async () => {
    const state = await api('/v1/scheduler');
    const counted = state.policies.filter((policy) => policy.counters);
    history.push([counted.reduce((sum, policy) => sum + policy.queued, 0),
      counted.reduce((sum, policy) => sum + policy.running, 0)]);
    while (history.length > HISTORY) history.shift();
    const engine = state.engine;
    fill(body,
      el('div', {class: 'stats'},
        stat('LLM calls in engine', count(engine.calls_in_flight), 'engine-in-flight'),
        stat('runs in flight (yours)', count(state.tenant_runs_in_flight)),
        stat('runs in flight (all)', count(state.runs_in_flight))),
      el('p', {class: 'muted small', text: `backend ${engine.backend} · ${count(engine.prompt_tokens)}`
        + ` prompt / ${count(engine.generated_tokens)} generated tokens so far`}),
      el('div', {class: 'legend small'}, el('span', {class: 'key queued', text: 'waiting'}),
        el('span', {class: 'key running', text: 'running'})),
      spark(history),
      state.policies.length ? state.policies.map(policyCard)
        : el('p', {class: 'muted small', text: 'No scheduler yet: it starts with the first run.'}));
  });
}
