-- CreateTable
CREATE TABLE "LoginThrottle" (
    "emailHash" TEXT NOT NULL,
    "failedCount" INTEGER NOT NULL,
    "lockedUntil" TIMESTAMPTZ(3),
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "LoginThrottle_pkey" PRIMARY KEY ("emailHash")
);

-- CreateIndex
CREATE INDEX "LoginThrottle_updatedAt_idx" ON "LoginThrottle"("updatedAt");

-- Carry the counters of accounts over, keyed like api/auth/local.ts (stored addresses are normalised).
INSERT INTO "LoginThrottle" ("emailHash", "failedCount", "lockedUntil", "updatedAt")
SELECT encode(sha256(convert_to("email", 'UTF8')), 'hex'), "failedLoginCount", "loginLockedUntil", CURRENT_TIMESTAMP
  FROM "User" WHERE "failedLoginCount" > 0;

-- AlterTable
ALTER TABLE "User" DROP COLUMN "failedLoginCount",
DROP COLUMN "loginLockedUntil";
