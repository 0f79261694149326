// Read and write DynamoDB items with the AWS SDK for JavaScript, the way a
// first-version deployment or an operator's tool would, for the tests.
// Usage: node sdk.js scan TABLE            -> JSON array of raw items, sorted by serviceName
//        node sdk.js put TABLE ITEM_JSON   (raw attribute values; creates TABLE if needed)
// Endpoint, region and credentials come from the AWS_* environment.
'use strict';
const path = require('path');
const ddb = require(path.join(__dirname, 'node_modules', '@aws-sdk', 'client-dynamodb'));

const client = new ddb.DynamoDBClient({
  endpoint: process.env.AWS_ENDPOINT_URL_DYNAMODB,
  region: process.env.AWS_REGION || 'us-east-1',
});

async function ensureTable(name) {
  try {
    await client.send(new ddb.CreateTableCommand({
      TableName: name,
      AttributeDefinitions: [{ AttributeName: 'serviceName', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'serviceName', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    }));
  } catch (e) {
    if (e.name !== 'ResourceInUseException') throw e;
  }
  await ddb.waitUntilTableExists({ client, maxWaitTime: 20, minDelay: 1 }, { TableName: name });
}

async function scan(name) {
  const items = [];
  let start;
  do {
    const out = await client.send(new ddb.ScanCommand({
      TableName: name, ConsistentRead: true, ExclusiveStartKey: start,
    }));
    items.push(...(out.Items || []));
    start = out.LastEvaluatedKey;
  } while (start);
  items.sort((a, b) => (a.serviceName.S < b.serviceName.S ? -1 : a.serviceName.S > b.serviceName.S ? 1 : 0));
  return items;
}

async function main() {
  const [cmd, table, item] = process.argv.slice(2);
  if (cmd === 'scan') {
    process.stdout.write(JSON.stringify(await scan(table)) + '\n');
  } else if (cmd === 'put') {
    await ensureTable(table);
    await client.send(new ddb.PutItemCommand({ TableName: table, Item: JSON.parse(item) }));
  } else {
    throw new Error(`unknown command '${cmd}'`);
  }
}

main().catch((e) => {
  process.stderr.write(`sdk.js: ${e.name}: ${e.message}\n`);
  process.exit(1);
});
