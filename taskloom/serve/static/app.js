// The dashboard's entry: ask for the key when the server wants one, then route
// `#/` (runs) and `#/runs/<id>` (one run); the scheduler panel stays on the side.
import {api, ApiError, apiKey, forgetApiKey, setApiKey} from './api.js';
import {clear} from './dom.js';
import {runPage} from './run_view.js';
import {runsPage} from './runs.js';
import {schedulerPanel} from './scheduler.js';

const $ = (id) => document.getElementById(id);
const session = {tenant: '', disposePage: null, disposePanel: null};

function showLogin(message) {
  stopAll();
  $('shell').hidden = true;
  $('sign-out').hidden = true;
  $('whoami').textContent = '';
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('api-key').focus();
}

function stopAll() {
  if (session.disposePage) session.disposePage();
  if (session.disposePanel) session.disposePanel();
  session.disposePage = session.disposePanel = null;
}

function route() {
  if (session.disposePage) session.disposePage();
  const page = clear($('page'));
  const match = /^#\/runs\/([^/?#]+)/.exec(window.location.hash);
  $('nav-runs').classList.toggle('active', !match);
  session.disposePage = match
    ? runPage(page, decodeURIComponent(match[1]), session)
    : runsPage(page, session);
}

async function open() {
  const hadKey = Boolean(apiKey());
  let state;
  try {
    state = await api('/v1/scheduler');
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      showLogin(hadKey ? 'That key was refused.' : '');
      return;
    }
    throw error;
  }
  session.tenant = state.tenant;
  $('login').hidden = true;
  $('shell').hidden = false;
  $('sign-out').hidden = false;
  $('whoami').textContent = `tenant ${state.tenant}`;
  session.disposePanel = schedulerPanel($('scheduler'));
  route();
}

window.addEventListener('hashchange', () => { if (!$('shell').hidden) route(); });
window.addEventListener('taskloom:unauthorized', () => {
  forgetApiKey();
  showLogin('The server refused the key.');
});
$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  setApiKey($('api-key').value.trim());
  $('api-key').value = '';
  open();
});
$('sign-out').addEventListener('click', () => {
  forgetApiKey();
  showLogin('');
});
open();
