"""Creates on the emulator the resources template.yaml declares in AWS.

Idempotent: existing resources are left as they are (the sample secret is
overwritten with the sample value). Run through infra/create-resources.sh,
which supplies the endpoint and dummy credentials.
"""

import json
import os

import boto3

ENDPOINT = os.environ["AWS_ENDPOINT_URL"]
REGION = os.environ.get("AWS_REGION", "us-east-1")
TABLE = os.environ.get("PSA_TABLE_NAME", "psa-bridge")
QUEUE = os.environ.get("PSA_QUEUE_NAME", "psa-bridge-jobs.fifo")
DLQ = os.environ.get("PSA_DLQ_NAME", "psa-bridge-jobs-dlq.fifo")
RECEIVE_LIMIT = os.environ.get("PSA_RECEIVE_LIMIT", "5")
SECRETS_PREFIX = os.environ.get("PSA_SECRETS_PREFIX", "psa-bridge")

# Same shape as bridge::config::TenantSecrets; obviously fake values.
SAMPLE_SECRET = {
    "zendesk_email": "agent@demo.example",
    "zendesk_api_token": "demo-zendesk-token",
    "zendesk_webhook_secret": "demo-zendesk-webhook-secret",
    "autotask_username": "api-user@demo.example",
    "autotask_secret": "demo-autotask-secret",
    "autotask_integration_code": "DEMOINTEGRATIONCODE",
    "autotask_callout_username": "callout",
    "autotask_callout_password": "demo-callout-password",
    "autotask_webhook_secret": "demo-autotask-webhook-secret",
}


def client(service):
    return boto3.client(service, endpoint_url=ENDPOINT, region_name=REGION)


def create_table():
    ddb = client("dynamodb")
    if TABLE not in ddb.list_tables()["TableNames"]:
        ddb.create_table(
            TableName=TABLE,
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            BillingMode="PAY_PER_REQUEST",
            SSESpecification={"Enabled": True},
        )
        ddb.get_waiter("table_exists").wait(TableName=TABLE)
    ttl = ddb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        ddb.update_time_to_live(
            TableName=TABLE,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
        )
    ddb.update_continuous_backups(
        TableName=TABLE,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
    )
    print(f"table    {TABLE}")


def create_queues():
    sqs = client("sqs")
    fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    dlq_url = sqs.create_queue(
        QueueName=DLQ, Attributes={**fifo, "MessageRetentionPeriod": "1209600"}
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": RECEIVE_LIMIT})
    queue_url = sqs.create_queue(
        QueueName=QUEUE,
        Attributes={**fifo, "VisibilityTimeout": "360", "RedrivePolicy": redrive},
    )["QueueUrl"]
    # create_queue keeps an existing queue's attributes; make the redrive policy current.
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"RedrivePolicy": redrive})
    print(f"queue    {queue_url}")
    print(f"dlq      {dlq_url}")
    return queue_url


def create_secret():
    sm = client("secretsmanager")
    name = f"{SECRETS_PREFIX}/demo"
    value = json.dumps(SAMPLE_SECRET)
    try:
        sm.create_secret(Name=name, SecretString=value)
    except sm.exceptions.ResourceExistsException:
        sm.put_secret_value(SecretId=name, SecretString=value)
    print(f"secret   {name}")


if __name__ == "__main__":
    create_table()
    queue_url = create_queues()
    create_secret()
    # What the functions read (bridge_aws::config_from_env).
    print()
    print(f"export TABLE_NAME={TABLE} QUEUE_URL={queue_url} SECRETS_PREFIX={SECRETS_PREFIX}")
