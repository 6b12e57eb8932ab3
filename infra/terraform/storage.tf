resource "aws_dynamodb_table" "orders" {
  # checkov:skip=CKV_AWS_119:SSE uses the AWS managed key (aws/dynamodb); a customer managed key adds a key policy, kms:* grants for both roles and a monthly cost that an example stack does not need.
  name         = "${var.name_prefix}-orders"
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "id"

  attribute {
    name = "id"
    type = "S"
  }

  server_side_encryption {
    enabled = true
  }

  point_in_time_recovery {
    enabled = true
  }
}

resource "aws_s3_bucket" "receipts" {
  # checkov:skip=CKV_AWS_18:Server access logs need a second bucket; every object call is already a traced S3 client span, and CloudTrail data events can be enabled per account.
  # checkov:skip=CKV_AWS_145:SSE-S3 (AES256) is the default encryption; SSE-KMS would add a KMS call per PutObject/GetObject and kms grants to both roles.
  # checkov:skip=CKV_AWS_144:Receipts are re-creatable example data; cross-region replication needs a second bucket in another region and a replication role.
  # checkov:skip=CKV2_AWS_62:Nothing consumes bucket events: the api function announces each order on the SQS queue itself.
  bucket = "${var.name_prefix}-receipts-${local.account_id}-${var.region}"
}

resource "aws_s3_bucket_public_access_block" "receipts" {
  bucket = aws_s3_bucket.receipts.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "receipts" {
  bucket = aws_s3_bucket.receipts.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_ownership_controls" "receipts" {
  bucket = aws_s3_bucket.receipts.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "receipts" {
  bucket = aws_s3_bucket.receipts.id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "receipts" {
  bucket = aws_s3_bucket.receipts.id

  rule {
    id     = "expire-old-versions"
    status = "Enabled"

    filter {}

    noncurrent_version_expiration {
      noncurrent_days = 30
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  # Lifecycle rules on a versioned bucket need versioning configured first.
  depends_on = [aws_s3_bucket_versioning.receipts]
}

resource "aws_sqs_queue" "orders_dlq" {
  name                      = "${var.name_prefix}-orders-dlq"
  message_retention_seconds = 1209600 # 14 days, the maximum: time to look at what failed
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "orders" {
  name = "${var.name_prefix}-orders"
  # At least 6 x the worker's timeout, as Lambda's SQS event source documentation recommends, so a batch
  # still being retried is not handed out again.
  visibility_timeout_seconds = 6 * local.worker_timeout
  sqs_managed_sse_enabled    = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.orders_dlq.arn
    maxReceiveCount     = 3
  })
}

# The worker publishes order.processed here; the notifier subscribes. Encrypted with the AWS managed key for
# SNS, whose key policy lets every principal of the account use it through SNS: the worker's role needs
# only sns:Publish.
resource "aws_sns_topic" "order_events" {
  name              = "${var.name_prefix}-order-events"
  kms_master_key_id = "alias/aws/sns"
}

# SNS invokes the notifier asynchronously; what still fails after Lambda's two retries lands here.
resource "aws_sqs_queue" "notifications_dlq" {
  name                      = "${var.name_prefix}-notifications-dlq"
  message_retention_seconds = 1209600 # 14 days, the maximum: time to look at what failed
  sqs_managed_sse_enabled   = true
}
