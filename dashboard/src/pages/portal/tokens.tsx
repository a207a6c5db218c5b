import { type FormEvent, useState } from 'react';
import { api, ok, type Schemas } from '../../api.ts';
import { useAction, useQuery } from '../../data.ts';
import { isStaff, useSignedIn } from '../../session.tsx';
import { ConfirmDialog } from '../../ui/dialog.tsx';
import { ProblemAlert } from '../../ui/feedback.tsx';
import { formatDate, formatDateTime } from '../../ui/format.ts';
import { StatusBadge } from '../../ui/status.tsx';
import { PageHead, Table } from './common.tsx';

type Scope = Schemas['Scope'];
type Token = Schemas['ApiToken'];

const SCOPES: { scope: Scope; label: string }[] = [
  { scope: 'instances:read', label: 'Read servers' },
  { scope: 'instances:write', label: 'Order and change servers' },
  { scope: 'billing:read', label: 'Read invoices' },
  { scope: 'admin', label: 'Administer Woolly (staff)' },
];

const EXPIRY = [
  { days: '30', label: '30 days' },
  { days: '90', label: '90 days' },
  { days: '365', label: 'A year' },
  { days: '', label: 'Never' },
];

function NewSecret({ created }: { created: Schemas['ApiTokenCreated'] }) {
  const [copied, setCopied] = useState<string>();
  const copy = () =>
    navigator.clipboard.writeText(created.token).then(
      () => setCopied('Copied'),
      () => setCopied('Could not copy: select the token and copy it'),
    );
  return (
    <section className="warning" aria-labelledby="new-token">
      <h2 id="new-token">Your new token “{created.name}”</h2>
      <p>
        <strong>Copy it now: it is shown only once.</strong> Store it where your scripts can read it.
      </p>
      <p>
        <code style={{ overflowWrap: 'anywhere' }}>{created.token}</code>
      </p>
      <button type="button" onClick={copy}>
        Copy token
      </button>{' '}
      <span role="status">{copied}</span>
    </section>
  );
}

function CreateToken({ onCreated }: { onCreated: (created: Schemas['ApiTokenCreated']) => void }) {
  const session = useSignedIn();
  const action = useAction();
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<Scope[]>(['instances:read']);
  const [days, setDays] = useState('90');
  const offered = SCOPES.filter((s) => s.scope !== 'admin' || isStaff(session));
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    await action.run(async () => {
      const body = { name, scopes, ...(days ? { expiresInDays: Number(days) } : {}) };
      onCreated(await ok(api.POST('/v1/tokens', { body })));
      setName('');
    });
  };
  return (
    <form className="card stack" onSubmit={submit} aria-labelledby="create-token">
      <h2 id="create-token">Create a token</h2>
      <label htmlFor="token-name">Name</label>
      <input
        id="token-name"
        required
        maxLength={100}
        value={name}
        onChange={(e) => setName(e.target.value)}
      />
      <fieldset className="stack">
        <legend>Scopes</legend>
        {offered.map(({ scope, label }) => (
          <label key={scope}>
            <input
              type="checkbox"
              checked={scopes.includes(scope)}
              onChange={(e) =>
                setScopes((was) => (e.target.checked ? [...was, scope] : was.filter((s) => s !== scope)))
              }
            />{' '}
            {label} <code>{scope}</code>
          </label>
        ))}
      </fieldset>
      <label htmlFor="token-expiry">Expires after</label>
      <select id="token-expiry" value={days} onChange={(e) => setDays(e.target.value)}>
        {EXPIRY.map((option) => (
          <option key={option.label} value={option.days}>
            {option.label}
          </option>
        ))}
      </select>
      <ProblemAlert problem={action.error} />
      <button type="submit" className="primary" disabled={action.busy || scopes.length === 0}>
        {action.busy ? 'Creating…' : 'Create token'}
      </button>
    </form>
  );
}

function status(token: Token): string {
  if (token.revokedAt) return 'revoked';
  if (token.expiresAt && new Date(token.expiresAt) < new Date()) return 'expired';
  return 'active';
}

export default function Tokens() {
  const tokens = useQuery(() => ok(api.GET('/v1/tokens')), []);
  const revoking = useAction();
  const [created, setCreated] = useState<Schemas['ApiTokenCreated']>();
  const [revoke, setRevoke] = useState<Token>();

  const confirmRevoke = async (token: Token) => {
    setRevoke(undefined);
    if (await revoking.run(() => ok(api.DELETE('/v1/tokens/{id}', { params: { path: { id: token.id } } }))))
      tokens.reload();
  };

  return (
    <>
      <PageHead title="API tokens" />
      <p className="hint">
        Tokens let scripts use the Woolly API as you, limited to the scopes you give them.
      </p>
      {created ? <NewSecret created={created} /> : null}
      <CreateToken
        onCreated={(token) => {
          setCreated(token);
          tokens.reload();
        }}
      />
      <ProblemAlert problem={revoking.error} />
      <Table
        label="Your tokens"
        columns={['Name', 'Starts with', 'Scopes', 'Created', 'Last used', 'Expires', 'Status', 'Actions']}
        rows={tokens.data?.data}
        problem={tokens.error}
        empty="No tokens yet."
        row={(token) => (
          <tr key={token.id}>
            <td>{token.name}</td>
            <td>
              <code>{token.prefix}</code>
            </td>
            <td className="wrap">{token.scopes.join(', ')}</td>
            <td>{formatDate(token.createdAt)}</td>
            <td>{formatDateTime(token.lastUsedAt)}</td>
            <td>{token.expiresAt ? formatDate(token.expiresAt) : 'Never'}</td>
            <td>
              <StatusBadge status={status(token)} />
            </td>
            <td>
              {token.revokedAt ? null : (
                <button
                  type="button"
                  className="danger"
                  disabled={revoking.busy}
                  aria-label={`Revoke ${token.name}`}
                  onClick={() => setRevoke(token)}
                >
                  {revoking.busy ? 'Revoking…' : 'Revoke'}
                </button>
              )}
            </td>
          </tr>
        )}
      />
      {revoke ? (
        <ConfirmDialog
          title={`Revoke ${revoke.name}?`}
          confirmLabel="Revoke token"
          danger
          onConfirm={() => confirmRevoke(revoke)}
          onClose={() => setRevoke(undefined)}
        >
          <p>Scripts using it stop working at once. This cannot be undone.</p>
        </ConfirmDialog>
      ) : null}
    </>
  );
}
