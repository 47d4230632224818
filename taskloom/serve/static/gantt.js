// A run's timeline: one row per node in program order, the tasks of a `plan` node
// (`<node>/plan<r>/<N>`) nested under it, each bar coloured by status, with the time its
// LLM calls waited in the scheduler under it and a mark where one of them was preempted.
// Rows are kept and updated in place, so a live run can redraw it several times a second.
import {byId, el, seconds} from './dom.js';

const TICK_STEPS = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 3600];

export function parentOf(node) {
  if (node.parent) return node.parent;
  const slash = node.id.indexOf('/');
  return slash < 0 ? null : node.id.slice(0, slash);
}

// Top-level nodes in `order`, each followed by its tasks (sorted by start, then id).
export function timelineRows(nodes, order) {
  const children = new Map();
  const top = [];
  for (const node of nodes.values()) {
    const parent = parentOf(node);
    if (parent === null) continue;
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(node);
  }
  const listed = new Set(order);
  const tops = [...order.filter((id) => nodes.has(id)),
    ...[...nodes.keys()].filter((id) => !listed.has(id) && !id.includes('/')).sort(byId)];
  for (const id of tops) {
    const tasks = (children.get(id) || []).sort((a, b) =>
      ((a.start ?? Infinity) - (b.start ?? Infinity)) || byId(a.id, b.id));
    top.push({node: nodes.get(id), depth: 0, tasks: tasks.length});
    for (const task of tasks) top.push({node: task, depth: 1, tasks: 0});
  }
  return top;
}

function tickLabel(at, step) {
  if (step >= 60) return `${Math.round(at / 60)} min`;
  return `${at.toFixed(step >= 1 ? 0 : (step >= 0.1 ? 1 : 2))} s`;
}

function tickStep(span) {
  return TICK_STEPS.find((step) => span / step <= 8) || TICK_STEPS[TICK_STEPS.length - 1];
}

export class Gantt {
  constructor(onSelect, onToggle) {
    this.onSelect = onSelect;
    this.onToggle = onToggle;
    this.collapsed = new Set();
    this.rows = new Map();
    this.axis = el('div', {class: 'gantt-axis'});
    this.body = el('div', {class: 'gantt-body'});
    this.root = el('div', {class: 'gantt', id: 'gantt'},
      el('div', {class: 'gantt-head'}, el('div', {class: 'gantt-label', text: 'node'}), this.axis),
      this.body);
  }

  rowFor(node) {
    let row = this.rows.get(node.id);
    if (row) return row;
    const toggle = el('button', {class: 'toggle', type: 'button', 'aria-label': 'show tasks',
      onclick: (event) => {
        event.stopPropagation();
        if (this.collapsed.has(node.id)) this.collapsed.delete(node.id);
        else this.collapsed.add(node.id);
        this.onToggle();
      }});
    const queue = el('div', {class: 'queue', title: 'waited in the scheduler'});
    const bar = el('div', {class: 'bar'});
    const preemptions = el('div', {class: 'preemptions'});
    row = el('div', {class: 'gantt-row', 'data-node': node.id,
      onclick: () => this.onSelect(node.id)},
    el('div', {class: 'gantt-label'}, toggle, el('span', {class: 'name'}),
      el('span', {class: 'kind'})),
    el('div', {class: 'track'}, queue, bar, preemptions));
    this.rows.set(node.id, row);
    return row;
  }

  // `nodes`: id -> {id, kind, status, start, end, queue_s, preempted, ...}; `nowS`: the
  // run's clock now, which a running bar reaches.
  render(nodes, order, nowS, selected) {
    const rows = timelineRows(nodes, order);
    let span = Math.max(nowS || 0, 0.001);
    for (const {node} of rows) if (node.end !== null && node.end !== undefined) span = Math.max(span, node.end);
    span *= 1.02;
    const step = tickStep(span);
    const ticks = [];
    for (let at = 0; at <= span; at += step) {
      ticks.push(el('span', {class: 'tick', style: {left: `${(100 * at) / span}%`},
        text: tickLabel(at, step)}));
    }
    this.axis.replaceChildren(...ticks);

    const shown = [];
    let hiddenUnder = null;
    for (const {node, depth, tasks} of rows) {
      if (depth > 0 && hiddenUnder === parentOf(node)) continue;
      if (depth === 0) hiddenUnder = this.collapsed.has(node.id) ? node.id : null;
      const row = this.rowFor(node);
      const status = node.status || 'pending';
      row.dataset.status = status;
      row.dataset.depth = String(depth);
      row.classList.toggle('selected', node.id === selected);
      row.classList.toggle('task', depth > 0);
      const toggle = row.querySelector('.toggle');
      toggle.hidden = tasks === 0;
      toggle.textContent = this.collapsed.has(node.id) ? '▸' : '▾';
      row.querySelector('.name').textContent = depth > 0 ? node.id.slice(node.id.indexOf('/') + 1) : node.id;
      row.querySelector('.kind').textContent = tasks ? `${node.kind || ''} · ${tasks} tasks` : (node.kind || '');
      const bar = row.querySelector('.bar');
      const queue = row.querySelector('.queue');
      const start = node.start;
      const hasStart = start !== null && start !== undefined;
      const end = node.end ?? (status === 'running' ? nowS : null);
      bar.hidden = !hasStart;
      queue.hidden = !hasStart || !node.queue_s;
      if (hasStart) {
        const stop = Math.max(end ?? start, start);
        Object.assign(bar.style, {left: `${(100 * start) / span}%`,
          width: `max(2px, ${(100 * (stop - start)) / span}%)`});
        const duration = end === null ? '' : ` · ${seconds(stop - start)}`;
        const preempted = node.preemptions ? ` · preempted ${node.preemptions}×` : '';
        bar.title = `${node.id}: ${status}${duration}${preempted}`;
        if (node.queue_s) {
          const width = Math.min(node.queue_s, stop - start);
          Object.assign(queue.style, {left: `${(100 * start) / span}%`,
            width: `${(100 * width) / span}%`});
          queue.title = `its calls waited ${seconds(node.queue_s)} in the scheduler`;
        }
      }
      row.querySelector('.preemptions').replaceChildren(
        ...(hasStart ? preemptionMarks(node, span, end ?? start) : []));
      shown.push(row);
    }
    this.body.replaceChildren(...shown);
  }
}

// A mark where one of the node's LLM calls lost its engine slot, with a line on to where
// it got one back (or to the bar's end, if it never did).
function preemptionMarks(node, span, barEnd) {
  return (node.preempted || []).map(({at, resumed}) => {
    const back = resumed ?? Math.max(barEnd, at);
    const title = resumed === null || resumed === undefined
      ? `a call preempted at ${seconds(at)}; it ended before it resumed`
      : `a call preempted at ${seconds(at)}, resumed at ${seconds(resumed)}`;
    return el('div', {class: 'preempt', title, 'data-at': at, style: {
      left: `${(100 * at) / span}%`, width: `${(100 * (back - at)) / span}%`}});
  });
}
