// The public sponsor page of one server, at /sponsor/<domain>: its tiers, the sponsors who
// chose to be named, and a form that opens Stripe Checkout. No sign-in: requests go without
// cookies, so the API treats the visitor as anonymous.
const domain = decodeURIComponent(location.pathname.split('/').filter(Boolean)[1] ?? '');
const api = `/v1/sponsor-pages/${encodeURIComponent(domain)}`;
const $ = (id) => document.getElementById(id);

const money = (price) =>
  new Intl.NumberFormat(undefined, { style: 'currency', currency: price.currency }).format(
    price.amountMinor / 100,
  );

function show(id, text) {
  const element = $(id);
  element.textContent = text;
  element.hidden = false;
}

/** A problem+json answer as one line: its detail, and each field's message. */
async function problemOf(response) {
  const problem = await response.json().catch(() => ({}));
  const fields = (problem.errors ?? []).map((error) => `${error.field}: ${error.message}`);
  return [problem.detail ?? `The server answered ${response.status}.`, ...fields].join(' ');
}

function render(page) {
  document.title = `Sponsor ${page.domain}`;
  $('title').textContent = `Sponsor ${page.domain}`;
  $('headline').textContent = page.headline ?? '';
  const tiers = $('tiers');
  page.tiers.forEach((tier, index) => {
    const label = document.createElement('label');
    const input = document.createElement('input');
    Object.assign(input, {
      type: 'radio',
      name: 'tier',
      value: tier.code,
      required: true,
      checked: index === 0,
    });
    label.append(input, ` ${tier.name}: ${money(tier.price)} a month`);
    tiers.append(label);
  });
  $('sponsor-form').hidden = !page.checkoutAvailable;
  $('checkout-unavailable').hidden = page.checkoutAvailable;
  $('sponsoring').hidden = false;
  const list = $('sponsors');
  for (const sponsor of page.sponsors) {
    const item = document.createElement('li');
    item.textContent = `${sponsor.displayName} (${page.tiers.find((t) => t.code === sponsor.tier)?.name ?? sponsor.tier})`;
    list.append(item);
  }
  $('anonymous').textContent =
    page.anonymousSponsors > 0
      ? `and ${page.anonymousSponsors} anonymous sponsor${page.anonymousSponsors > 1 ? 's' : ''}`
      : '';
  $('sponsors-section').hidden = page.sponsors.length === 0 && page.anonymousSponsors === 0;
}

async function sponsor(event) {
  event.preventDefault();
  $('problem').hidden = true;
  const form = new FormData(event.target);
  const displayName = String(form.get('displayName') ?? '').trim();
  const button = $('sponsor-button');
  button.disabled = true;
  const response = await fetch(`${api}/checkout`, {
    method: 'POST',
    credentials: 'omit',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      tier: form.get('tier'),
      email: form.get('email'),
      displayName: displayName || null,
      showName: form.get('showName') === 'on',
    }),
  });
  if (response.ok) {
    location.assign((await response.json()).checkoutUrl);
    return;
  }
  button.disabled = false;
  show('problem', await problemOf(response));
}

const status = new URLSearchParams(location.search).get('status');
if (status === 'paid')
  show('status', 'Thank you! Your sponsorship starts as soon as Stripe confirms the payment.');
if (status === 'cancelled') show('status', 'Checkout was cancelled; nothing was charged.');
$('sponsor-form').addEventListener('submit', sponsor);
const response = await fetch(api, { credentials: 'omit' });
if (response.ok) render(await response.json());
else
  show('problem', response.status === 404 ? 'This server has no sponsor page.' : await problemOf(response));
