// npm run aws-emulator: SQS (on fauxqs, JSON and query protocols) and EventBridge (buses, rules,
// SQS targets) on one endpoint, http://127.0.0.1:4566, in memory, until Ctrl-C. For the seed
// platform walk-through and for trying AWS destinations with nothing installed; not AWS.
// AWS_EMULATOR_PORT moves it; AWS_REGION names the region in ARNs (default us-east-1).
import { AwsEmulator } from './aws-emulator/index.js'

const port = Number(process.env.AWS_EMULATOR_PORT ?? 4566)
const emulator = await AwsEmulator.start({ port })
console.log(`AWS emulator at ${emulator.endpoint}: SQS (JSON and query protocols) and EventBridge (buses, rules, SQS targets), in memory`)
const region = emulator.eventBridge.region
console.log(`  export AWS_ENDPOINT_URL=${emulator.endpoint} AWS_REGION=${region} AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test`)
const stop = () => { void emulator.stop().then(() => process.exit(0)) }
process.once('SIGINT', stop)
process.once('SIGTERM', stop)
