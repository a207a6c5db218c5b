-- AlterTable
ALTER TABLE "Cluster" ADD COLUMN     "databaseAdminSecretId" UUID;
