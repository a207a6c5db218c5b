import { type FormEvent, useState } from 'react';
import { api, idempotencyKey, ok } from '../../api.ts';
import { useAction, useQuery } from '../../data.ts';
import type { Role } from '../../session.tsx';
import { ProblemAlert } from '../../ui/feedback.tsx';
import { formatDate } from '../../ui/format.ts';
import { StatusBadge } from '../../ui/status.tsx';
import { ROLES, RoleSelect, Table } from './common.tsx';

function Invite({
  organizationId,
  owner,
  onInvited,
}: {
  organizationId: string;
  owner: boolean;
  onInvited: () => void;
}) {
  const action = useAction();
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<Role>('viewer');
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const sent = await action.run(() =>
      ok(
        api.POST('/v1/organizations/{id}/invitations', {
          params: { path: { id: organizationId }, header: { 'Idempotency-Key': idempotencyKey() } },
          body: { email, role },
        }),
      ),
    );
    if (sent) {
      setEmail('');
      onInvited();
    }
  };
  return (
    <form className="filters" onSubmit={submit}>
      <div className="stack">
        <label htmlFor="invite-email">E-mail</label>
        <input
          id="invite-email"
          type="email"
          required
          value={email}
          onChange={(e) => setEmail(e.target.value)}
        />
      </div>
      <div className="stack">
        <label htmlFor="invite-role">Role</label>
        <RoleSelect id="invite-role" value={role} onChange={setRole} roles={owner ? ROLES : ROLES.slice(1)} />
      </div>
      <button type="submit" className="primary" disabled={action.busy}>
        {action.busy ? 'Inviting…' : 'Invite'}
      </button>
      <ProblemAlert problem={action.error} />
    </form>
  );
}

/** The organization's invitations, and a form to invite someone (owners and admins). */
export function Invitations({ organizationId: id, owner }: { organizationId: string; owner: boolean }) {
  const invitations = useQuery(
    () => ok(api.GET('/v1/organizations/{id}/invitations', { params: { path: { id } } })),
    [id],
  );
  const action = useAction();
  return (
    <>
      <ProblemAlert problem={action.error} />
      <section className="card" aria-labelledby="invitations" style={{ marginTop: '1rem' }}>
        <h2 id="invitations">Invitations</h2>
        <Invite organizationId={id} owner={owner} onInvited={invitations.reload} />
        <Table
          label="Invitations"
          columns={['E-mail', 'Role', 'Status', 'Expires', 'Actions']}
          rows={invitations.data?.data}
          problem={invitations.error}
          empty="No invitations."
          row={(invitation) => (
            <tr key={invitation.id}>
              <td>{invitation.email}</td>
              <td>{invitation.role}</td>
              <td>
                <StatusBadge status={invitation.status} />
              </td>
              <td>{formatDate(invitation.expiresAt)}</td>
              <td>
                {invitation.status === 'pending' ? (
                  <button
                    type="button"
                    disabled={action.busy}
                    aria-label={`Revoke the invitation of ${invitation.email}`}
                    onClick={() =>
                      action
                        .run(() =>
                          ok(
                            api.DELETE('/v1/organizations/{id}/invitations/{invitationId}', {
                              params: { path: { id, invitationId: invitation.id } },
                            }),
                          ),
                        )
                        .then((done) => done && invitations.reload())
                    }
                  >
                    Revoke
                  </button>
                ) : null}
              </td>
            </tr>
          )}
        />
      </section>
    </>
  );
}
