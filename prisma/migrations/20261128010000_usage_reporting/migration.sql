-- Reporting the usage ledger to Stripe Billing Meters: each organization's Stripe customer,
-- and per ledger entry the failed reports and the last failure.
ALTER TABLE "Organization" ADD COLUMN "stripeCustomerId" TEXT;
CREATE UNIQUE INDEX "Organization_stripeCustomerId_key" ON "Organization"("stripeCustomerId");

ALTER TABLE "UsageEvent" ADD COLUMN "reportAttempts" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN "reportError" TEXT;
