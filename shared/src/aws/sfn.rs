//! Step Functions send-side propagation: the execution's `traceHeader`, from the client span, unless
//! the user set one; the state machine's ARN on the span.
//! [Step Functions and X-Ray](https://docs.aws.amazon.com/step-functions/latest/dg/concepts-xray-tracing.html)
use super::{Span, attr};
use crate::OpenTelemetrySpanExt;
use aws_sdk_sfn::operation as op;
use aws_smithy_runtime_api::client::interceptors::context::Input;

pub(super) fn record_and_inject(span: &Span, xray_header: Option<&str>, input: &mut Input) {
    let (arn, trace_header) =
        if let Some(input) = input.downcast_mut::<op::start_execution::StartExecutionInput>() {
            (input.state_machine_arn.clone(), &mut input.trace_header)
        } else if let Some(input) =
            input.downcast_mut::<op::start_sync_execution::StartSyncExecutionInput>()
        {
            (input.state_machine_arn.clone(), &mut input.trace_header)
        } else {
            return;
        };
    if let Some(header) = xray_header {
        trace_header.get_or_insert_with(|| header.to_owned());
    }
    if let Some(arn) = arn {
        span.set_attribute(attr::STEP_FUNCTIONS_STATE_MACHINE_ARN, arn);
    }
}
