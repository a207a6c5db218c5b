-- CreateTable
CREATE TABLE "CustomDomain" (
    "id" UUID NOT NULL,
    "organizationId" UUID NOT NULL,
    "hostname" TEXT NOT NULL,
    "verificationToken" TEXT NOT NULL,
    "verifiedAt" TIMESTAMPTZ(3),
    "lastCheckedAt" TIMESTAMPTZ(3),
    "lastCheckError" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "CustomDomain_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "CustomDomain_organizationId_hostname_key" ON "CustomDomain"("organizationId", "hostname");

-- CreateIndex: only one organization may hold a verified claim on a hostname (not expressible in schema.prisma)
CREATE UNIQUE INDEX "CustomDomain_hostname_verified_key" ON "CustomDomain"("hostname") WHERE "verifiedAt" IS NOT NULL;

-- AddForeignKey
ALTER TABLE "CustomDomain" ADD CONSTRAINT "CustomDomain_organizationId_fkey" FOREIGN KEY ("organizationId") REFERENCES "Organization"("id") ON DELETE CASCADE ON UPDATE CASCADE;
