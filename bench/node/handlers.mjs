// The seed lessons' handlers, as they would be written on Node.js 20 with the AWS SDK v3: the
// benchmark's peer. Same tables and same work as the Rust functions: create puts a user, delete
// removes one, the stream handler turns each record's images into plain objects and puts one
// history item per record (all at once, with Promise.all).
import { randomUUID } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, PutCommand, DeleteCommand } from "@aws-sdk/lib-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";

const db = DynamoDBDocumentClient.from(new DynamoDBClient({}));

export async function create(event) {
  const body = JSON.parse(event.body);
  const user = { id: randomUUID(), timestamp: Date.now(), email: body.email };
  await db.send(new PutCommand({ TableName: process.env.USERS_TABLE, Item: user }));
  return { statusCode: 201, body: JSON.stringify(user) };
}

export async function remove(event) {
  const { id } = JSON.parse(event.body);
  const { Attributes } = await db.send(
    new DeleteCommand({ TableName: process.env.USERS_TABLE, Key: { id }, ReturnValues: "ALL_OLD" }),
  );
  return Attributes
    ? { statusCode: 200, body: JSON.stringify(Attributes) }
    : { statusCode: 404, body: JSON.stringify({ message: `no user with id ${id}` }) };
}

export async function stream(event) {
  await Promise.all(
    event.Records.map((record) => {
      const oldImage = record.dynamodb.OldImage ? unmarshall(record.dynamodb.OldImage) : undefined;
      const newImage = record.dynamodb.NewImage ? unmarshall(record.dynamodb.NewImage) : undefined;
      const item = {
        userId: (newImage || oldImage).id,
        sequenceNumber: record.dynamodb.SequenceNumber.padStart(40, "0"),
        eventName: record.eventName,
        changedAt: record.dynamodb.ApproximateCreationDateTime,
        ...(oldImage && { oldImage }),
        ...(newImage && { newImage }),
      };
      return db.send(new PutCommand({ TableName: process.env.HISTORY_TABLE, Item: item }));
    }),
  );
  return { batchItemFailures: [] };
}
