-- AlterTable
ALTER TABLE "Cluster" ADD COLUMN     "backupCredentialsSecretId" UUID;
