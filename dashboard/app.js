// The fleet page: lists the servers the signed-in token may see, refreshed every few seconds.
// A token is kept for this browser tab only (sessionStorage).
const TOKEN_KEY = 'woolly.token';
const REFRESH_MS = 3000;

const $ = (id) => document.getElementById(id);
let timer;

function showError(message) {
  $('error').textContent = message;
  $('error').hidden = !message;
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

if (sessionStorage.getItem(TOKEN_KEY)) signedIn();
else signOut();
