import { type FormEvent, useState } from 'react';
import { api, idempotencyKey, ok } from '../../api.ts';
import { useAction } from '../../data.ts';
import { useOrganization } from '../../organization.tsx';
import { useSession } from '../../session.tsx';
import { ProblemAlert } from '../../ui/feedback.tsx';

/** Someone in no organization names one first; they become its owner. */
export function NewOrganization() {
  const { refresh } = useSession();
  const { choose } = useOrganization();
  const action = useAction();
  const [name, setName] = useState('');
  const [slug, setSlug] = useState<string>();
  const derived = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void action.run(async () => {
      const created = await ok(
        api.POST('/v1/organizations', {
          params: { header: { 'Idempotency-Key': idempotencyKey() } },
          body: { name, slug: slug ?? derived },
        }),
      );
      await refresh();
      choose(created.id);
    });
  };
  return (
    <form className="card stack narrow" onSubmit={submit} aria-labelledby="new-org">
      <h2 id="new-org">First, name your organization</h2>
      <p className="hint">
        Servers, invoices and members belong to an organization: your club, team or company.
      </p>
      <label htmlFor="org-name">Name</label>
      <input id="org-name" required maxLength={120} value={name} onChange={(e) => setName(e.target.value)} />
      <label htmlFor="org-slug">Short name (for addresses)</label>
      <input
        id="org-slug"
        required
        pattern="[a-z0-9](?:[a-z0-9\-]{0,46}[a-z0-9])?"
        aria-describedby="org-slug-hint"
        value={slug ?? derived}
        onChange={(e) => setSlug(e.target.value)}
      />
      <p id="org-slug-hint" className="hint">
        Lower-case letters, digits and hyphens.
      </p>
      <ProblemAlert problem={action.error} />
      <button type="submit" className="primary" disabled={action.busy}>
        {action.busy ? 'Creating…' : 'Create organization'}
      </button>
    </form>
  );
}
