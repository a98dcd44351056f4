// The AWS SDK reads these at client construction: fake credentials and a region for emulators,
// and no EC2 metadata lookups (there is no such service here).
process.env.AWS_REGION = 'us-east-1'
process.env.AWS_ACCESS_KEY_ID = 'test'
process.env.AWS_SECRET_ACCESS_KEY = 'test'
process.env.AWS_EC2_METADATA_DISABLED = 'true'
