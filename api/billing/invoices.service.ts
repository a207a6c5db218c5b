import { settlePastDue } from '../../billing/dunning.ts';
import type { InvoiceLine } from '../../billing/ledger-invoices.ts';
import { AppError } from '../../core/errors.ts';
import type { Invoice } from '../../core/generated/prisma/client.ts';
import { audit } from '../audit.ts';
import type { ApiDeps, RequestContext } from '../context.ts';
import { assertOrganizationAccess, assertStaff, MEMBER_ROLES } from '../policy.ts';

/** Ledger invoices (provider `none`) have provider ids of this form (billing/ledger-invoices.ts). */
const isLedgerInvoice = (invoice: Pick<Invoice, 'providerId'>) => invoice.providerId.startsWith('woolly:');

/** An invoice as the API shows it. */
export function presentInvoice(invoice: Invoice) {
  return {
    id: invoice.id,
    organizationId: invoice.organizationId,
    instanceId: invoice.instanceId,
    provider: isLedgerInvoice(invoice) ? ('none' as const) : ('stripe' as const),
    status: invoice.status,
    total: { amountMinor: invoice.totalMinor, currency: invoice.currency },
    amountPaidMinor: invoice.amountPaidMinor,
    refundedMinor: invoice.refundedMinor,
    period: { start: invoice.periodStart, end: invoice.periodEnd },
    dueAt: invoice.dueAt,
    paidAt: invoice.paidAt,
    createdAt: invoice.createdAt,
    lines: invoice.lines as unknown as InvoiceLine[],
  };
}

/** A page of an organization's invoices, newest first; the cursor is the last invoice served. */
export async function listOrganizationInvoices(
  deps: Pick<ApiDeps, 'db'>,
  ctx: RequestContext,
  organizationId: string,
  page: { limit?: number | undefined; cursor?: string | undefined },
) {
  await assertOrganizationAccess(deps.db, ctx.actor, organizationId, MEMBER_ROLES);
  const limit = page.limit ?? 50;
  if (page.cursor) {
    const cursor = await deps.db.invoice.count({ where: { id: page.cursor, organizationId } });
    if (cursor === 0) {
      throw new AppError('validation_failed', 'The cursor is not one this API gave out for these invoices.', {
        errors: [{ field: 'cursor', message: 'Use the nextCursor of the previous page.' }],
      });
    }
  }
  const rows = await deps.db.invoice.findMany({
    where: { organizationId },
    orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
    take: limit + 1,
    ...(page.cursor ? { cursor: { id: page.cursor }, skip: 1 } : {}),
  });
  const served = rows.slice(0, limit);
  return {
    data: served.map(presentInvoice),
    nextCursor: rows.length > limit ? (served.at(-1)?.id ?? null) : null,
  };
}

/** One invoice, for members of its organization and staff; anyone else is told it is not there. */
export async function getInvoice(deps: Pick<ApiDeps, 'db'>, ctx: RequestContext, invoiceId: string) {
  const invoice = await deps.db.invoice.findUnique({ where: { id: invoiceId } });
  if (!invoice) throw new AppError('not_found', `No invoice ${invoiceId}.`);
  await assertOrganizationAccess(deps.db, ctx.actor, invoice.organizationId, MEMBER_ROLES).catch(() => {
    throw new AppError('not_found', `No invoice ${invoiceId}.`);
  });
  return presentInvoice(invoice);
}

/**
 * Staff record that a ledger invoice was paid in full. Its subscription, past due, is settled
 * at once (billing/dunning.ts `settlePastDue`: a server suspended for non-payment resumes)
 * unless another of its invoices is still overdue. The invoice, the settlement and the audit
 * row commit together.
 */
export async function markInvoicePaid(deps: Pick<ApiDeps, 'db'>, ctx: RequestContext, invoiceId: string) {
  assertStaff(ctx.actor);
  return deps.db.$transaction(async (tx) => {
    await tx.$queryRaw`select 1 from "Invoice" where id = ${invoiceId}::uuid for update`;
    const invoice = await tx.invoice.findUnique({ where: { id: invoiceId } });
    if (!invoice) throw new AppError('not_found', `No invoice ${invoiceId}.`);
    if (!isLedgerInvoice(invoice)) {
      throw new AppError(
        'conflict',
        `Invoice ${invoiceId} is Stripe's: it is paid through Stripe, and its state here follows Stripe's.`,
      );
    }
    if (invoice.status !== 'open') {
      throw new AppError(
        'conflict',
        `Invoice ${invoiceId} is ${invoice.status}; only an open invoice can be marked paid.`,
      );
    }
    const now = new Date();
    const paid = await tx.invoice.update({
      where: { id: invoiceId },
      data: { status: 'paid', paidAt: now, amountPaidMinor: invoice.totalMinor },
    });
    await audit(tx, ctx, {
      action: 'invoice.mark_paid',
      targetType: 'invoice',
      targetId: invoiceId,
      organizationId: invoice.organizationId,
      data: { amountMinor: invoice.totalMinor, currency: invoice.currency },
    });
    const subscription = invoice.instanceId
      ? await tx.subscription.findUnique({ where: { instanceId: invoice.instanceId }, select: { id: true } })
      : null;
    const stillOverdue = await tx.invoice.count({
      where: { instanceId: invoice.instanceId, status: 'open', dueAt: { lte: now } },
    });
    if (subscription && stillOverdue === 0) await settlePastDue(tx, subscription.id, now);
    return presentInvoice(paid);
  });
}
