// The fleet page: lists the servers the signed-in token may see, refreshed every few seconds.
// A token is kept for this browser tab only (sessionStorage). It also completes the links
// mailed by the API: `#verify-email=<token>` (sign-up) and `#accept-invitation=<token>`.
const TOKEN_KEY = 'woolly.token';
const INVITATION_KEY = 'woolly.invitation';
const REFRESH_MS = 3000;

const $ = (id) => document.getElementById(id);
let timer;

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
}

function showNotice(message) {
  $('notice').textContent = message;
  $('notice').hidden = !message;
}

async function post(path, body, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(path, { method: 'POST', headers, body: JSON.stringify(body) });
  return { response, body: await response.json().catch(() => ({})) };
}

const problemText = (body) => `${body.title ?? 'Error'}: ${body.detail ?? ''}`.trim();

async function verifyEmail(token) {
  const { response, body } = await post('/v1/signup/verify', { token });
  if (response.ok) showNotice('Your e-mail address is confirmed. Sign in to order a server.');
  else showError(problemText(body));
}

/** Accepts a pending invitation once someone is signed in; until then it waits in this tab. */
async function acceptInvitation() {
  const invitation = sessionStorage.getItem(INVITATION_KEY);
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!invitation) return;
  if (!token) {
    showNotice('Sign in with the invited address to accept the invitation.');
    return;
  }
  sessionStorage.removeItem(INVITATION_KEY);
  const { response, body } = await post('/v1/invitations/accept', { token: invitation }, token);
  if (response.ok) showNotice(`Invitation accepted: you joined as ${body.role}.`);
  else showError(problemText(body));
}

async function followLink() {
  const [name, value] = location.hash.slice(1).split('=');
  if (!value) return;
  history.replaceState(null, '', location.pathname);
  if (name === 'verify-email') await verifyEmail(value);
  if (name === 'accept-invitation') sessionStorage.setItem(INVITATION_KEY, value);
}

function cell(text, className) {
  const td = document.createElement('td');
  if (className) {
    const badge = document.createElement('span');
    badge.className = `badge ${className}`;
    badge.textContent = text;
    td.append(badge);
  } else {
    td.textContent = text;
  }
  return td;
}

function render(instances) {
  const rows = instances.map((instance) => {
    const tr = document.createElement('tr');
    tr.dataset.instanceId = instance.id;
    tr.append(
      cell(instance.domain),
      cell(instance.plan.name),
      cell(instance.status.replace('_', ' '), `status-${instance.status}`),
      instance.dryRun ? cell('dry-run', 'dry-run') : cell(instance.cluster?.name ?? '—'),
      cell(instance.mastodonVersion),
      cell(new Date(instance.updatedAt).toLocaleString()),
    );
    return tr;
  });
  $('instances').replaceChildren(...rows);
  const running = instances.filter((instance) => instance.status === 'running').length;
  $('summary').textContent =
    `${instances.length} ${instances.length === 1 ? 'server' : 'servers'}, ${running} running`;
}

async function refresh() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const response = await fetch('/v1/instances?limit=200', { headers: { authorization: `Bearer ${token}` } });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) {
    signOut();
    showError(body.detail ?? 'The token was not accepted.');
    return;
  }
  if (!response.ok) {
    showError(`${body.title ?? 'Error'}: ${body.detail ?? response.statusText}`);
    return;
  }
  showError('');
  render(body.data);
}

function signedIn() {
  acceptInvitation().catch((error) => showError(String(error)));
  $('sign-in').hidden = true;
  $('fleet').hidden = false;
  $('sign-out').hidden = false;
  refresh().catch((error) => showError(String(error)));
  clearInterval(timer);
  timer = setInterval(() => refresh().catch((error) => showError(String(error))), REFRESH_MS);
}

function signOut() {
  clearInterval(timer);
  sessionStorage.removeItem(TOKEN_KEY);
  $('fleet').hidden = true;
  $('sign-out').hidden = true;
  $('sign-in').hidden = false;
  $('token').focus();
}

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
  $('token').value = '';
  signedIn();
});
$('sign-out').addEventListener('click', signOut);
// A second mailed link opened in this tab changes only the fragment: follow it too.
window.addEventListener('hashchange', () => {
  showNotice('');
  showError('');
  followLink()
    .then(acceptInvitation)
    .catch((error) => showError(String(error)));
});

followLink()
  .catch((error) => showError(String(error)))
  .finally(() => {
    if (sessionStorage.getItem(TOKEN_KEY)) signedIn();
    else {
      signOut();
      acceptInvitation().catch((error) => showError(String(error)));
    }
  });
