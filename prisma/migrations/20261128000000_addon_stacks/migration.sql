-- Each instance's add-on stack: what its Pulumi stack holds or, on the dry-run target, plans.
CREATE TABLE "AddonStack" (
    "id" UUID NOT NULL,
    "instanceId" UUID NOT NULL,
    "stackName" TEXT NOT NULL,
    "state" TEXT NOT NULL,
    "resources" JSONB NOT NULL DEFAULT '[]',
    "outputs" JSONB NOT NULL DEFAULT '{}',
    "changes" JSONB NOT NULL DEFAULT '{}',
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "AddonStack_pkey" PRIMARY KEY ("id")
);

CREATE UNIQUE INDEX "AddonStack_instanceId_key" ON "AddonStack"("instanceId");

ALTER TABLE "AddonStack" ADD CONSTRAINT "AddonStack_instanceId_fkey" FOREIGN KEY ("instanceId") REFERENCES "Instance"("id") ON DELETE CASCADE ON UPDATE CASCADE;
