-- Billing lifecycle: the Checkout session of an order, the dunning state of a subscription
-- (past due since, grace end, suspension, last notice) and its cancellation, invoices with
-- their lines, payments and refunds, sponsorships with their payments, sponsor pages.
ALTER TABLE "Order" ADD COLUMN "checkoutSessionId" TEXT,
ADD COLUMN "checkoutUrl" TEXT,
ADD COLUMN "checkoutExpiresAt" TIMESTAMPTZ(3);
CREATE UNIQUE INDEX "Order_checkoutSessionId_key" ON "Order"("checkoutSessionId");

ALTER TABLE "Subscription" ADD COLUMN "pastDueSince" TIMESTAMPTZ(3),
ADD COLUMN "graceEndsAt" TIMESTAMPTZ(3),
ADD COLUMN "suspendedAt" TIMESTAMPTZ(3),
ADD COLUMN "lastNotice" TEXT,
ADD COLUMN "canceledAt" TIMESTAMPTZ(3),
ADD COLUMN "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;

ALTER TABLE "Invoice" ADD COLUMN "instanceId" UUID,
ADD COLUMN "providerSubscriptionId" TEXT,
ADD COLUMN "lines" JSONB NOT NULL DEFAULT '[]',
ADD COLUMN "amountPaidMinor" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN "refundedMinor" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN "dueAt" TIMESTAMPTZ(3),
ADD COLUMN "paidAt" TIMESTAMPTZ(3);
CREATE INDEX "Invoice_instanceId_idx" ON "Invoice"("instanceId");

ALTER TABLE "Sponsorship" ADD COLUMN "displayName" TEXT,
ADD COLUMN "showName" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN "amountMinor" INTEGER NOT NULL,
ADD COLUMN "currency" CHAR(3) NOT NULL,
ADD COLUMN "checkoutSessionId" TEXT,
ADD COLUMN "stripeCustomerId" TEXT,
ADD COLUMN "startedAt" TIMESTAMPTZ(3),
ADD COLUMN "endedAt" TIMESTAMPTZ(3),
ADD COLUMN "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;
CREATE UNIQUE INDEX "Sponsorship_checkoutSessionId_key" ON "Sponsorship"("checkoutSessionId");
CREATE INDEX "Sponsorship_instanceId_idx" ON "Sponsorship"("instanceId");

CREATE TABLE "SponsorshipPayment" (
    "id" UUID NOT NULL,
    "sponsorshipId" UUID NOT NULL,
    "providerInvoiceId" TEXT NOT NULL,
    "amountMinor" INTEGER NOT NULL,
    "currency" CHAR(3) NOT NULL,
    "paidAt" TIMESTAMPTZ(3) NOT NULL,
    "creditTransactionId" TEXT,
    "creditedAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "SponsorshipPayment_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "SponsorshipPayment_providerInvoiceId_key" ON "SponsorshipPayment"("providerInvoiceId");
ALTER TABLE "SponsorshipPayment" ADD CONSTRAINT "SponsorshipPayment_sponsorshipId_fkey" FOREIGN KEY ("sponsorshipId") REFERENCES "Sponsorship"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

CREATE TABLE "SponsorPage" (
    "instanceId" UUID NOT NULL,
    "enabled" BOOLEAN NOT NULL DEFAULT false,
    "headline" TEXT,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "SponsorPage_pkey" PRIMARY KEY ("instanceId")
);
ALTER TABLE "SponsorPage" ADD CONSTRAINT "SponsorPage_instanceId_fkey" FOREIGN KEY ("instanceId") REFERENCES "Instance"("id") ON DELETE CASCADE ON UPDATE CASCADE;
