// The run's DAG, drawn left to right in levels (a node one level after its latest
// dependency), each level ordered to keep edges short. Boxes are coloured by status.
import {svg} from './dom.js';

const BOX_W = 156;
const BOX_H = 40;
const GAP_X = 56;
const GAP_Y = 18;
const PAD = 12;

function levels(graphNodes) {
  const level = new Map();
  for (const node of graphNodes) { // topological order: dependencies come first
    const deps = node.depends_on.filter((dep) => level.has(dep));
    level.set(node.id, deps.length ? 1 + Math.max(...deps.map((dep) => level.get(dep))) : 0);
  }
  return level;
}

// Nodes per column, each column sorted by the mean row of its dependencies (one pass
// in level order, seeded by program order).
export function layout(graphNodes) {
  const level = levels(graphNodes);
  const columns = [];
  for (const node of graphNodes) {
    const at = level.get(node.id);
    while (columns.length <= at) columns.push([]);
    columns[at].push(node);
  }
  const row = new Map();
  columns.forEach((column, index) => {
    if (index > 0) {
      const weight = (node) => {
        const deps = node.depends_on.filter((dep) => row.has(dep));
        return deps.length ? deps.reduce((sum, dep) => sum + row.get(dep), 0) / deps.length : 0;
      };
      column.sort((a, b) => weight(a) - weight(b));
    }
    column.forEach((node, position) => row.set(node.id, position));
  });
  const tallest = Math.max(1, ...columns.map((column) => column.length));
  const place = new Map();
  columns.forEach((column, index) => {
    const offset = ((tallest - column.length) * (BOX_H + GAP_Y)) / 2;
    column.forEach((node, position) => place.set(node.id, {
      x: PAD + index * (BOX_W + GAP_X),
      y: PAD + offset + position * (BOX_H + GAP_Y),
    }));
  });
  return {
    place,
    width: 2 * PAD + columns.length * BOX_W + Math.max(0, columns.length - 1) * GAP_X,
    height: 2 * PAD + tallest * BOX_H + (tallest - 1) * GAP_Y,
  };
}

function shorten(text, most) {
  return text.length > most ? `${text.slice(0, most - 1)}…` : text;
}

export class Dag {
  constructor(graphNodes, onSelect) {
    const {place, width, height} = layout(graphNodes);
    this.boxes = new Map();
    const edges = [];
    for (const node of graphNodes) {
      const to = place.get(node.id);
      for (const dep of node.depends_on) {
        const from = place.get(dep);
        if (!from) continue;
        const x1 = from.x + BOX_W;
        const y1 = from.y + BOX_H / 2;
        const x2 = to.x;
        const y2 = to.y + BOX_H / 2;
        const bend = (x2 - x1) / 2;
        edges.push(svg('path', {class: 'edge', 'marker-end': 'url(#arrow)',
          d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2 - 2},${y2}`}));
      }
    }
    const boxes = graphNodes.map((node) => {
      const at = place.get(node.id);
      const tasks = svg('text', {class: 'dag-tasks', x: at.x + BOX_W - 8, y: at.y + 15,
        'text-anchor': 'end'});
      const box = svg('g', {class: 'dag-node', 'data-node': node.id, 'data-status': 'pending',
        tabindex: '0', role: 'button', onclick: () => onSelect(node.id),
        onkeydown: (event) => { if (event.key === 'Enter') onSelect(node.id); }},
      svg('title', {text: `${node.id} (${node.kind})`}),
      svg('rect', {x: at.x, y: at.y, width: BOX_W, height: BOX_H, rx: 6}),
      svg('text', {class: 'dag-name', x: at.x + 8, y: at.y + 17, text: shorten(node.id, 17)}),
      svg('text', {class: 'dag-kind', x: at.x + 8, y: at.y + 32, text: node.kind}),
      tasks);
      this.boxes.set(node.id, {box, tasks});
      return box;
    });
    this.root = svg('svg', {class: 'dag', id: 'dag', width, height,
      viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'the run\'s graph'},
    svg('defs', {}, svg('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5,
      markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse'},
    svg('path', {d: 'M0,0 L10,5 L0,10 z', class: 'arrow'}))),
    edges, boxes);
  }

  // `tasks`: id -> how many plan tasks ran under it.
  update(nodes, tasks, selected) {
    for (const [id, {box, tasks: label}] of this.boxes) {
      const node = nodes.get(id);
      box.dataset.status = (node && node.status) || 'pending';
      box.classList.toggle('selected', id === selected);
      const many = tasks.get(id) || 0;
      label.textContent = many ? `${many} tasks` : '';
    }
  }
}
