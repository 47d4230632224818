// One run: its header (status, latency, tokens, cancel), the Gantt timeline and the DAG
// updated live from the run's event stream, and the selected node's details.
import {api, ApiError, streamEvents} from './api.js';
import {Dag} from './dag.js';
import {count, el, fill, pretty, seconds, statusPill} from './dom.js';
import {Gantt, parentOf} from './gantt.js';
import {tokensOf} from './runs.js';

const ENDED = new Set(['succeeded', 'failed', 'skipped', 'cancelled']);
const TICK_MS = 250;
const REFETCH_MS = 1000;
// Fields the budgets/accounting work adds to a node; shown when the run carries them.
const ACCOUNTING = [
  ['queue_s', 'waited in the scheduler', seconds],
  ['engine_s', 'in the engine', seconds],
  ['tool_s', 'in tools', seconds],
  ['tool_calls', 'tool calls', count],
  ['cost_usd', 'cost', (usd) => `$${Number(usd).toFixed(6)}`],
];
const TEMPLATE_FIELDS = ['system', 'prompt', 'messages', 'question', 'tool', 'args', 'over',
  'node'];

function field(label, value, attrs) {
  return el('div', {class: 'field', ...attrs}, el('span', {class: 'label', text: label}),
    el('span', {class: 'value'}, value));
}

function schedulerNote(node, recordsPreemptions) {
  if (recordsPreemptions) {
    return 'The wait in the scheduler is summed over the node\'s LLM calls (the hatched strip '
      + 'under its bar). A dark mark on the bar is where the scheduler preempted one of them '
      + '(gave its engine slot to a call that ranked better); the dotted line runs on to '
      + 'where it resumed.';
  }
  return 'queue_s' in node
    ? 'The wait in the scheduler is summed over the node\'s LLM calls (the hatched strip '
      + 'under its bar); this run was stored before preemptions were recorded per node, the '
      + 'Scheduler panel counts them.'
    : 'This run records no scheduler waits or preemptions for its nodes; the Scheduler '
      + 'panel shows the totals of the shared scheduler.';
}

export function runPage(root, runId, session) {
  const stop = new AbortController();
  const state = {
    run: null, graph: null, nodes: new Map(), order: [], selected: null,
    lastAt: 0, lastAtSeen: performance.now(), ended: false, refetchTimer: null,
  };

  const title = el('h1', {}, el('span', {class: 'mono', text: runId}));
  const statusSlot = el('span', {id: 'run-status'});
  const cancelButton = el('button', {id: 'cancel-run', class: 'danger', text: 'Cancel run',
    hidden: true, onclick: async () => {
      cancelButton.disabled = true;
      try {
        await api(`/v1/runs/${encodeURIComponent(runId)}/cancel`, {method: 'POST'});
      } catch (error) {
        notice.textContent = error.message;
      }
    }});
  const facts = el('div', {class: 'facts'});
  const notice = el('p', {class: 'error', role: 'alert'});
  const gantt = new Gantt((id) => select(id), () => draw());
  const dagSlot = el('div', {class: 'dag-slot'});
  const detail = el('div', {id: 'node-detail', class: 'node-detail'},
    el('p', {class: 'muted', text: 'Select a node in the timeline or the graph.'}));
  const outputs = el('pre', {class: 'outputs', id: 'run-outputs'});
  let dag = null;

  root.append(
    el('section', {class: 'card run-head'},
      el('div', {class: 'section-head'},
        el('div', {}, el('a', {href: '#/', class: 'back', text: '← runs'}), title),
        el('div', {class: 'head-actions'}, statusSlot, cancelButton)),
      facts, notice),
    el('section', {class: 'card'}, el('h2', {text: 'Timeline'}), gantt.root),
    el('div', {class: 'split'},
      el('section', {class: 'card'}, el('h2', {text: 'Graph'}), dagSlot),
      el('section', {class: 'card'}, el('h2', {text: 'Node'}), detail)),
    el('section', {class: 'card'}, el('h2', {text: 'Outputs'}), outputs));

  const nodeOf = (id) => {
    if (!state.nodes.has(id)) state.nodes.set(id, {id, status: 'pending', start: null, end: null});
    return state.nodes.get(id);
  };

  const nowS = () => {
    if (state.ended && state.run) return state.run.wall_s || state.lastAt;
    const sinceEvent = state.lastAt + (performance.now() - state.lastAtSeen) / 1000;
    const created = state.run && state.run.created_at;
    const byClock = created ? Date.now() / 1000 - created : 0;
    return Math.max(sinceEvent, Math.min(byClock, sinceEvent + 5));
  };

  // The stored run: finished nodes with their tokens and outputs.
  const absorbRun = (run) => {
    state.run = {...(state.run || {}), ...run};
    for (const [id, stored] of Object.entries(run.nodes || {})) {
      const node = nodeOf(id);
      const live = node.status;
      Object.assign(node, stored, {id});
      if (!ENDED.has(stored.status) && live && live !== 'pending') node.status = live;
    }
    if (run.status !== 'running') state.ended = true;
  };

  const onEvent = (event) => {
    if (event.kind === 'result') {
      absorbRun(event.data);
      state.ended = true;
    } else if (event.kind === 'node') {
      const data = event.data;
      const node = nodeOf(data.node_id);
      if (data.parent) node.parent = data.parent;
      node.status = data.status;
      if (data.status === 'running' && node.start === null) node.start = data.at_s;
      if (ENDED.has(data.status)) {
        node.end = data.at_s;
        if (node.start === null) node.start = data.at_s;
        scheduleRefetch();
      }
      if (data.generated_tokens) node.generated_tokens = data.generated_tokens;
      if (data.error) node.error = data.error;
      if (data.at_s >= state.lastAt) {
        state.lastAt = data.at_s;
        state.lastAtSeen = performance.now();
      }
    }
    draw();
  };

  const scheduleRefetch = () => {
    if (state.refetchTimer !== null) return;
    state.refetchTimer = setTimeout(async () => {
      state.refetchTimer = null;
      try {
        absorbRun(await api(`/v1/runs/${encodeURIComponent(runId)}`, {signal: stop.signal}));
        draw();
      } catch (error) { if (!(error instanceof ApiError) && !stop.signal.aborted) throw error; }
    }, REFETCH_MS);
  };

  const select = (id) => {
    state.selected = id;
    draw();
  };

  const drawHead = () => {
    const run = state.run || {};
    const status = state.ended ? run.status : 'running';
    if (status && statusSlot.textContent !== status) statusSlot.replaceChildren(statusPill(status));
    cancelButton.hidden = state.ended;
    const tokens = tokensOf({nodes: Object.fromEntries(state.nodes)});
    fill(title,el('span', {text: run.program || ''}), ' ',
      el('span', {class: 'mono muted', text: runId}));
    fill(facts,
      field('latency', seconds(state.ended ? run.wall_s : nowS()), {id: 'run-latency'}),
      field('prompt tokens', count(tokens.prompt)),
      field('generated tokens', count(tokens.generated)),
      field('nodes', `${[...state.nodes.values()].filter((n) => ENDED.has(n.status)).length} / ${state.nodes.size} done`),
      field('policy', run.policy || ''),
      field('tenant', session.tenant, {class: 'field mono'}),
      field('inputs', JSON.stringify(run.inputs || {}), {class: 'field wide mono'}),
      run.budget_exceeded ? field('budget exceeded', `${run.budget_exceeded.limit}: used `
        + `${run.budget_exceeded.used} of ${run.budget_exceeded.allowed}`, {class: 'field wide error'})
        : null,
      run.error ? field('error', run.error, {class: 'field wide error'}) : null);
    outputs.textContent = state.ended ? pretty(run.outputs || {}) : '(the run has not finished)';
  };

  let detailShown = '';
  const drawDetail = () => {
    const node = state.selected && state.nodes.get(state.selected);
    if (!node) return;
    // Redrawn only when the node changed, so its text can be selected during a run.
    const shown = JSON.stringify([node, Boolean(state.graph)]);
    if (shown === detailShown) return;
    detailShown = shown;
    const definition = state.graph
      && (state.graph.nodes.find((entry) => entry.id === node.id) || {}).definition;
    const duration = node.start !== null && node.end !== null && node.end !== undefined
      ? seconds(node.end - node.start) : '';
    const accounting = ACCOUNTING.filter(([key]) => node[key] !== undefined && node[key] !== null)
      .map(([key, label, format]) => field(label, format(node[key])));
    const templates = definition ? TEMPLATE_FIELDS.filter((key) => key in definition) : [];
    const recordsPreemptions = Array.isArray(node.preempted);
    fill(detail,
      el('h3', {}, el('span', {class: 'mono', text: node.id}), ' ', statusPill(node.status || 'pending')),
      el('div', {class: 'facts'},
        field('kind', node.kind || (definition && definition.kind) || ''),
        field('start', node.start === null ? '' : seconds(node.start)),
        field('duration', duration),
        field('attempts', count(node.attempts)),
        field('LLM calls', count(node.llm_calls)),
        field('prompt tokens', count(node.prompt_tokens), {'data-field': 'prompt_tokens'}),
        field('generated tokens', count(node.generated_tokens), {'data-field': 'generated_tokens'}),
        field('prefix-cached tokens', count(node.cached_prompt_tokens)),
        accounting,
        recordsPreemptions ? field('preemptions', count(node.preempted.length),
          {'data-field': 'preemptions'}) : null,
        recordsPreemptions && node.preempted.length ? field('preempted at',
          node.preempted.map(({at, resumed}) => (resumed === null || resumed === undefined
            ? `${seconds(at)} (not resumed)` : `${seconds(at)} → ${seconds(resumed)}`)).join(', '),
          {class: 'field wide', 'data-field': 'preempted'}) : null),
      el('p', {class: 'muted small', text: schedulerNote(node, recordsPreemptions)}),
      templates.map((key) => el('div', {class: 'block'},
        el('h4', {text: key === 'prompt' || key === 'messages' || key === 'system'
          ? `${key} (template as written; the rendered prompt is not stored)` : key}),
        el('pre', {class: 'template', text: pretty(definition[key])}))),
      node.error ? el('div', {class: 'block'}, el('h4', {text: 'error'}),
        el('pre', {class: 'error', text: node.error})) : null,
      el('div', {class: 'block'}, el('h4', {text: 'output'}),
        el('pre', {class: 'output', id: 'node-output',
          text: node.output === undefined ? '(not finished)' : pretty(node.output)})));
  };

  let drawPending = false;
  const draw = () => {
    if (drawPending) return;
    drawPending = true;
    requestAnimationFrame(() => {
      drawPending = false;
      if (stop.signal.aborted) return;
      drawHead();
      gantt.render(state.nodes, state.order, nowS(), state.selected);
      if (dag) {
        const tasks = new Map();
        for (const node of state.nodes.values()) {
          const parent = parentOf(node);
          if (parent !== null) tasks.set(parent, (tasks.get(parent) || 0) + 1);
        }
        dag.update(state.nodes, tasks, state.selected);
      }
      drawDetail();
    });
  };

  const start = async () => {
    try {
      const [graph, run] = await Promise.all([
        api(`/v1/runs/${encodeURIComponent(runId)}/graph`, {signal: stop.signal})
          .catch((error) => {
            if (error instanceof ApiError && error.status === 409) {
              dagSlot.textContent = error.message;
              return null;
            }
            throw error;
          }),
        api(`/v1/runs/${encodeURIComponent(runId)}`, {signal: stop.signal}),
      ]);
      state.graph = graph;
      if (graph) {
        state.order = graph.nodes.map((node) => node.id);
        for (const entry of graph.nodes) nodeOf(entry.id).kind = entry.kind;
        dag = new Dag(graph.nodes, select);
        dagSlot.replaceChildren(dag.root);
      }
      absorbRun(run);
      if (run.status === 'running') state.ended = false;
      draw();
      await streamEvents(runId, onEvent, stop.signal);
    } catch (error) {
      if (stop.signal.aborted) return;
      notice.textContent = error instanceof ApiError && error.status === 404
        ? `No run ${runId} for this key.` : `Cannot load the run: ${error.message}`;
    }
  };

  const ticker = setInterval(() => { if (!state.ended) draw(); }, TICK_MS);
  start();
  return () => {
    stop.abort();
    clearInterval(ticker);
    clearTimeout(state.refetchTimer);
  };
}
