-- CreateEnum
CREATE TYPE "FleetUpgradeStatus" AS ENUM ('running', 'stopped', 'succeeded', 'failed');

-- CreateEnum
CREATE TYPE "FleetUpgradeMemberStatus" AS ENUM ('pending', 'upgrading', 'succeeded', 'failed', 'skipped');

-- CreateTable
CREATE TABLE "FleetUpgrade" (
    "id" UUID NOT NULL,
    "targetVersion" TEXT NOT NULL,
    "waveSize" INTEGER NOT NULL,
    "clusterId" UUID,
    "fromVersion" TEXT,
    "status" "FleetUpgradeStatus" NOT NULL,
    "reason" TEXT,
    "currentWave" INTEGER NOT NULL DEFAULT 0,
    "createdById" UUID NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMPTZ(3),

    CONSTRAINT "FleetUpgrade_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "FleetUpgradeMember" (
    "id" UUID NOT NULL,
    "fleetUpgradeId" UUID NOT NULL,
    "instanceId" UUID NOT NULL,
    "position" INTEGER NOT NULL,
    "wave" INTEGER NOT NULL,
    "status" "FleetUpgradeMemberStatus" NOT NULL DEFAULT 'pending',
    "fromVersion" TEXT NOT NULL,
    "generation" INTEGER,
    "note" TEXT,
    "startedAt" TIMESTAMPTZ(3),
    "finishedAt" TIMESTAMPTZ(3),

    CONSTRAINT "FleetUpgradeMember_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "FleetUpgrade_createdAt_idx" ON "FleetUpgrade"("createdAt");

-- CreateIndex
CREATE INDEX "FleetUpgradeMember_fleetUpgradeId_wave_idx" ON "FleetUpgradeMember"("fleetUpgradeId", "wave");

-- CreateIndex
CREATE UNIQUE INDEX "FleetUpgradeMember_fleetUpgradeId_instanceId_key" ON "FleetUpgradeMember"("fleetUpgradeId", "instanceId");

-- CreateIndex: at most one fleet upgrade runs at a time (not expressible in schema.prisma)
CREATE UNIQUE INDEX "FleetUpgrade_one_running_key" ON "FleetUpgrade"("status") WHERE "status" = 'running';

-- AddForeignKey
ALTER TABLE "FleetUpgradeMember" ADD CONSTRAINT "FleetUpgradeMember_fleetUpgradeId_fkey" FOREIGN KEY ("fleetUpgradeId") REFERENCES "FleetUpgrade"("id") ON DELETE CASCADE ON UPDATE CASCADE;
