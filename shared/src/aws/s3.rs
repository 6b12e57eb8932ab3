//! S3 attributes on client spans: the bucket and the key.

use super::{Span, attr};
use crate::OpenTelemetrySpanExt;
use aws_sdk_s3::operation as op;
use aws_smithy_runtime_api::client::interceptors::context::Input;

pub(super) fn record_input(span: &Span, input: &Input) {
    macro_rules! bucket_key {
        ($($module:ident :: $ty:ident),* $(,)?) => {
            $(if let Some(input) = input.downcast_ref::<op::$module::$ty>() {
                if let Some(bucket) = &input.bucket {
                    span.set_attribute(attr::S3_BUCKET, bucket.clone());
                }
                if let Some(key) = &input.key {
                    span.set_attribute(attr::S3_KEY, key.clone());
                }
                return;
            })*
        };
    }
    macro_rules! bucket {
        ($($module:ident :: $ty:ident),* $(,)?) => {
            $(if let Some(input) = input.downcast_ref::<op::$module::$ty>() {
                if let Some(bucket) = &input.bucket {
                    span.set_attribute(attr::S3_BUCKET, bucket.clone());
                }
                return;
            })*
        };
    }
    bucket_key!(
        put_object::PutObjectInput,
        get_object::GetObjectInput,
        head_object::HeadObjectInput,
        delete_object::DeleteObjectInput,
        copy_object::CopyObjectInput,
        create_multipart_upload::CreateMultipartUploadInput,
        upload_part::UploadPartInput,
        complete_multipart_upload::CompleteMultipartUploadInput,
    );
    bucket!(
        list_objects_v2::ListObjectsV2Input,
        head_bucket::HeadBucketInput,
        create_bucket::CreateBucketInput,
        delete_bucket::DeleteBucketInput,
    );
}
