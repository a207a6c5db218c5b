-- Corrections of the usage ledger: the entry of a bucket is replaced by appending a revision
-- that names the key it supersedes, and the Stripe meter event of a replaced entry is cancelled
-- within 24 h, later the difference is settled by a customer balance transaction.
ALTER TABLE "UsageEvent" ADD COLUMN "revision" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN "supersedes" TEXT,
ADD COLUMN "reason" TEXT,
ADD COLUMN "cancelledAt" TIMESTAMPTZ(3),
ADD COLUMN "creditedAt" TIMESTAMPTZ(3),
ADD COLUMN "creditMinor" INTEGER;
CREATE UNIQUE INDEX "UsageEvent_supersedes_key" ON "UsageEvent"("supersedes");
