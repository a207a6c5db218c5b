-- AlterTable
ALTER TABLE "DryRunObject" ADD COLUMN     "position" INTEGER NOT NULL DEFAULT 0;

