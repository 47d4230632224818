// The runs page: a form to start a run, and this tenant's runs in a live table with a
// filter and a cancel button.
import {api, ApiError, every} from './api.js';
import {clock, count, el, seconds, statusPill} from './dom.js';

const POLL_MS = 1500;
const LIST_LIMIT = 200;
const DETAIL_LIMIT = 60; // runs whose token counts are fetched per poll, newest first
const FIXED_STATUSES = ['running', 'succeeded', 'failed', 'cancelled'];

export function tokensOf(run) {
  let prompt = 0;
  let generated = 0;
  for (const node of Object.values(run.nodes || {})) {
    prompt += node.prompt_tokens || 0;
    generated += node.generated_tokens || 0;
  }
  return {prompt, generated};
}

function submitForm(onSubmitted) {
  const program = el('select', {id: 'submit-program', name: 'program', required: true});
  const inputs = el('textarea', {id: 'submit-inputs', rows: 4, spellcheck: 'false'});
  const policy = el('input', {id: 'submit-policy', placeholder: 'server default'});
  const message = el('div', {id: 'submit-message', class: 'message', role: 'status'});
  const button = el('button', {type: 'submit', id: 'submit-run', text: 'Submit run'});
  const described = new Map();

  const fillDefaults = () => {
    const chosen = described.get(program.value);
    const defaults = {};
    for (const [name, spec] of Object.entries((chosen && chosen.inputs) || {})) {
      if ('default' in spec) defaults[name] = spec.default;
      else defaults[name] = spec.type === 'number' || spec.type === 'integer' ? 0 : '';
    }
    inputs.value = JSON.stringify(defaults, null, 2);
  };
  program.addEventListener('change', fillDefaults);

  api('/v1/programs').then(({programs}) => {
    if (!programs.length) {
      program.append(el('option', {value: '', text: 'no programs (start serve with --specs)'}));
      button.disabled = true;
      return;
    }
    for (const entry of programs) {
      described.set(entry.name, entry);
      program.append(el('option', {
        value: entry.name, disabled: !entry.valid, title: entry.error || entry.description || '',
        text: entry.valid ? entry.name : `${entry.name} (invalid spec)`,
      }));
    }
    const firstValid = programs.find((entry) => entry.valid);
    if (firstValid) program.value = firstValid.name;
    fillDefaults();
  }).catch((error) => { message.textContent = `Cannot list programs: ${error.message}`; });

  const form = el('form', {id: 'submit-form', class: 'card submit', onsubmit: async (event) => {
    event.preventDefault();
    message.className = 'message';
    let parsed;
    try {
      parsed = inputs.value.trim() ? JSON.parse(inputs.value) : {};
    } catch (error) {
      message.className = 'message error';
      message.textContent = `Inputs are not JSON: ${error.message}`;
      return;
    }
    const body = {program: program.value, inputs: parsed};
    if (policy.value.trim()) body.policy = policy.value.trim();
    button.disabled = true;
    try {
      const started = await api('/v1/runs', {method: 'POST', body});
      message.replaceChildren('Started run ',
        el('a', {href: `#/runs/${started.run_id}`, class: 'mono', text: started.run_id}));
      onSubmitted(started.run_id);
    } catch (error) {
      message.className = 'message error';
      message.replaceChildren(error.message,
        ...(error instanceof ApiError ? error.errors : []).map((line) => el('div', {text: line})));
    } finally {
      button.disabled = false;
    }
  }},
  el('h2', {text: 'Submit a run'}),
  el('div', {class: 'form-row'},
    el('label', {}, 'Program', program),
    el('label', {}, 'Policy', policy)),
  el('label', {class: 'wide'}, 'Inputs (JSON)', inputs),
  el('div', {class: 'form-row'}, button, message));
  return form;
}

export function runsPage(root, session) {
  const details = new Map(); // run_id -> run JSON (finished runs are kept, not refetched)
  const rows = new Map(); // run_id -> <tr>
  let runs = [];
  let fresh = null;

  const statusFilter = el('select', {id: 'filter-status', 'aria-label': 'Status'},
    el('option', {value: '', text: 'all statuses'}),
    FIXED_STATUSES.map((status) => el('option', {value: status, text: status})));
  const textFilter = el('input', {id: 'filter-text', type: 'search',
    placeholder: 'filter by program or run id', 'aria-label': 'Filter'});
  const tbody = el('tbody', {id: 'runs-body'});
  const empty = el('p', {class: 'muted', id: 'runs-empty', text: 'No runs yet.'});
  const table = el('table', {class: 'runs', id: 'runs-table'},
    el('thead', {}, el('tr', {},
      ['Run', 'Program', 'Status', 'Tenant', 'Started', 'Latency', 'Tokens (prompt + gen.)', '']
        .map((title) => el('th', {text: title})))),
    tbody);

  const cancel = async (runId, button) => {
    button.disabled = true;
    try {
      await api(`/v1/runs/${encodeURIComponent(runId)}/cancel`, {method: 'POST'});
    } catch (error) {
      button.title = error.message;
    }
    refresh();
  };

  const rowFor = (run) => {
    let row = rows.get(run.run_id);
    if (!row) {
      const cancelButton = el('button', {class: 'small danger', text: 'Cancel',
        'data-action': 'cancel', onclick: () => cancel(run.run_id, cancelButton)});
      row = el('tr', {'data-run': run.run_id},
        el('td', {}, el('a', {href: `#/runs/${run.run_id}`, class: 'mono', text: run.run_id})),
        el('td', {class: 'program'}), el('td', {class: 'status'}), el('td', {class: 'mono tenant'}),
        el('td', {class: 'started'}), el('td', {class: 'num latency'}),
        el('td', {class: 'num tokens'}), el('td', {class: 'actions'}, cancelButton));
      rows.set(run.run_id, row);
    }
    return row;
  };

  const render = () => {
    const wanted = statusFilter.value;
    const text = textFilter.value.trim().toLowerCase();
    const known = new Set([...FIXED_STATUSES, ...runs.map((run) => run.status)]);
    for (const status of known) {
      if (![...statusFilter.options].some((option) => option.value === status)) {
        statusFilter.append(el('option', {value: status, text: status}));
      }
    }
    const shown = runs.filter((run) => (!wanted || run.status === wanted)
      && (!text || run.program.toLowerCase().includes(text) || run.run_id.includes(text)));
    const now = Date.now() / 1000;
    const ordered = shown.map((run) => {
      const row = rowFor(run);
      const detail = details.get(run.run_id);
      row.dataset.status = run.status;
      row.classList.toggle('fresh', run.run_id === fresh);
      row.querySelector('.program').textContent = run.program;
      const pill = row.querySelector('.status');
      if (pill.textContent !== run.status) pill.replaceChildren(statusPill(run.status));
      row.querySelector('.tenant').textContent = session.tenant;
      row.querySelector('.started').textContent = clock(run.created_at);
      const running = run.status === 'running';
      row.querySelector('.latency').textContent = seconds(running
        ? Math.max(0, now - run.created_at) : (run.wall_s || (run.finished_at - run.created_at)));
      if (detail) {
        const tokens = tokensOf(detail);
        row.querySelector('.tokens').textContent =
          `${count(tokens.prompt)} + ${count(tokens.generated)}`;
      }
      row.querySelector('[data-action=cancel]').hidden = !running;
      return row;
    });
    tbody.replaceChildren(...ordered);
    empty.hidden = ordered.length > 0;
    empty.textContent = runs.length ? 'No run matches the filter.' : 'No runs yet.';
  };

  const refresh = async () => {
    const listed = await api(`/v1/runs?limit=${LIST_LIMIT}`);
    runs = listed.runs;
    render();
    const stale = runs.slice(0, DETAIL_LIMIT).filter((run) => {
      const kept = details.get(run.run_id);
      return !kept || kept.status === 'running' || run.status === 'running';
    });
    await Promise.all(stale.map(async (run) => {
      try {
        details.set(run.run_id, await api(`/v1/runs/${encodeURIComponent(run.run_id)}`));
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
      }
    }));
    render();
  };

  statusFilter.addEventListener('change', render);
  textFilter.addEventListener('input', render);
  root.append(
    submitForm((runId) => { fresh = runId; refresh(); }),
    el('section', {class: 'card'},
      el('div', {class: 'section-head'}, el('h2', {text: 'Runs'}),
        el('div', {class: 'filters'}, statusFilter, textFilter)),
      table, empty));
  return every(POLL_MS, refresh);
}
