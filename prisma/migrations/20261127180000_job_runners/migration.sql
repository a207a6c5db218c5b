-- CreateTable
CREATE TABLE "JobRunner" (
    "id" TEXT NOT NULL,
    "lockKey" SERIAL NOT NULL,
    "host" TEXT NOT NULL,
    "pid" INTEGER NOT NULL,
    "startedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "JobRunner_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "JobRunner_lockKey_key" ON "JobRunner"("lockKey");
