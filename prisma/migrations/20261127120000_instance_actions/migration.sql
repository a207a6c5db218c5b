-- AlterEnum
ALTER TYPE "OperationKind" ADD VALUE 'configure';

-- AlterTable
ALTER TABLE "Instance" ADD COLUMN     "deleteAfter" TIMESTAMPTZ(3);

-- AlterTable: orders keep their domain, since the instance of a cancelled, never-paid order is removed.
ALTER TABLE "Order" ADD COLUMN     "domain" TEXT;
UPDATE "Order" o SET "domain" = i."domain" FROM "Instance" i WHERE i."id" = o."instanceId";
ALTER TABLE "Order" ALTER COLUMN "domain" SET NOT NULL;
ALTER TABLE "Order" DROP CONSTRAINT "Order_instanceId_fkey";
ALTER TABLE "Order" ALTER COLUMN "instanceId" DROP NOT NULL;
ALTER TABLE "Order" ADD CONSTRAINT "Order_instanceId_fkey" FOREIGN KEY ("instanceId") REFERENCES "Instance"("id") ON DELETE SET NULL ON UPDATE CASCADE;
