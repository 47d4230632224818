// Small DOM helpers. Every text from the server (outputs, prompts, errors, names) goes
// in as textContent, never as markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(node, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.setAttribute('class', value);
    else if (key === 'text') node.textContent = value;
    else if (key === 'style') Object.assign(node.style, value);
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function el(tag, attrs, ...children) {
  return append(apply(document.createElement(tag), attrs), children);
}

export function svg(tag, attrs, ...children) {
  return append(apply(document.createElementNS(SVG_NS, tag), attrs), children);
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

// replaceChildren that, like el(), flattens arrays and leaves out null and false.
export function fill(node, ...children) {
  return append(clear(node), children);
}

export function seconds(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '';
  if (value < 10) return `${value.toFixed(2)} s`;
  if (value < 120) return `${value.toFixed(1)} s`;
  const minutes = Math.floor(value / 60);
  return `${minutes} min ${Math.round(value - minutes * 60)} s`;
}

export function count(value) {
  if (value === null || value === undefined) return '';
  return Number(value).toLocaleString('en-US');
}

export function clock(epochSeconds) {
  if (!epochSeconds) return '';
  const at = new Date(epochSeconds * 1000);
  return at.toLocaleTimeString('en-GB', {hour12: false});
}

export function pretty(value) {
  if (typeof value === 'string') return value;
  return JSON.stringify(value, null, 2);
}

export function statusPill(status) {
  return el('span', {class: `pill status-${status}`, 'data-status': status, text: status});
}

// Numbers in ids sort as numbers: plan1/2 before plan1/10.
export const byId = (a, b) => a.localeCompare(b, 'en', {numeric: true});
