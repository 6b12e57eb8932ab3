//! DynamoDB attributes on client spans: the tables an operation touches, consumed capacity, and the
//! read options of queries and scans.

use super::{Span, attr, string_array};
use crate::OpenTelemetrySpanExt;
use aws_sdk_dynamodb::{operation as op, types::ConsumedCapacity};
use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};

const DB_SYSTEM: &str = "aws.dynamodb";

/// Every table the call touches, batch and transact operations included.
fn table_names(input: &Input) -> Vec<String> {
    macro_rules! single {
        ($($module:ident :: $ty:ident),* $(,)?) => {
            $(if let Some(input) = input.downcast_ref::<op::$module::$ty>() {
                return input.table_name.iter().cloned().collect();
            })*
        };
    }
    single!(
        put_item::PutItemInput,
        get_item::GetItemInput,
        update_item::UpdateItemInput,
        delete_item::DeleteItemInput,
        query::QueryInput,
        scan::ScanInput,
        describe_table::DescribeTableInput,
        create_table::CreateTableInput,
        delete_table::DeleteTableInput,
        update_table::UpdateTableInput,
    );
    let mut names: Vec<String> = Vec::new();
    if let Some(input) = input.downcast_ref::<op::batch_write_item::BatchWriteItemInput>() {
        names.extend(
            input
                .request_items
                .iter()
                .flat_map(|items| items.keys().cloned()),
        );
    } else if let Some(input) = input.downcast_ref::<op::batch_get_item::BatchGetItemInput>() {
        names.extend(
            input
                .request_items
                .iter()
                .flat_map(|items| items.keys().cloned()),
        );
    } else if let Some(input) =
        input.downcast_ref::<op::transact_write_items::TransactWriteItemsInput>()
    {
        for item in input.transact_items.iter().flatten() {
            names.extend(item.put.as_ref().map(|p| p.table_name.clone()));
            names.extend(item.update.as_ref().map(|u| u.table_name.clone()));
            names.extend(item.delete.as_ref().map(|d| d.table_name.clone()));
            names.extend(item.condition_check.as_ref().map(|c| c.table_name.clone()));
        }
    } else if let Some(input) =
        input.downcast_ref::<op::transact_get_items::TransactGetItemsInput>()
    {
        for item in input.transact_items.iter().flatten() {
            names.extend(item.get.as_ref().map(|g| g.table_name.clone()));
        }
    }
    names.sort();
    names.dedup();
    names
}

pub(super) fn record_input(span: &Span, input: &Input) {
    span.set_attribute(attr::DB_SYSTEM_NAME, DB_SYSTEM);
    let names = table_names(input);
    if !names.is_empty() {
        span.set_attribute(attr::DYNAMODB_TABLE_NAMES, string_array(names));
    }
    // Read options only: never key or item values.
    let (consistent_read, projection, index_name, limit) =
        if let Some(input) = input.downcast_ref::<op::get_item::GetItemInput>() {
            (
                input.consistent_read,
                input.projection_expression.as_ref(),
                None,
                None,
            )
        } else if let Some(input) = input.downcast_ref::<op::query::QueryInput>() {
            let index = input.index_name.as_ref();
            let projection = input.projection_expression.as_ref();
            (input.consistent_read, projection, index, input.limit)
        } else if let Some(input) = input.downcast_ref::<op::scan::ScanInput>() {
            let index = input.index_name.as_ref();
            let projection = input.projection_expression.as_ref();
            (input.consistent_read, projection, index, input.limit)
        } else {
            return;
        };
    if let Some(consistent_read) = consistent_read {
        span.set_attribute(attr::DYNAMODB_CONSISTENT_READ, consistent_read);
    }
    if let Some(projection) = projection {
        span.set_attribute(attr::DYNAMODB_PROJECTION, projection.clone());
    }
    if let Some(index_name) = index_name {
        span.set_attribute(attr::DYNAMODB_INDEX_NAME, index_name.clone());
    }
    if let Some(limit) = limit {
        span.set_attribute(attr::DYNAMODB_LIMIT, i64::from(limit));
    }
}

/// `{"TableName":…,"CapacityUnits":…}` per table, the JSON form the semantic conventions give.
fn consumed_capacity_json(capacity: &ConsumedCapacity) -> String {
    let mut json = serde_json::Map::new();
    if let Some(table) = &capacity.table_name {
        json.insert("TableName".to_owned(), table.clone().into());
    }
    for (key, units) in [
        ("CapacityUnits", capacity.capacity_units),
        ("ReadCapacityUnits", capacity.read_capacity_units),
        ("WriteCapacityUnits", capacity.write_capacity_units),
    ] {
        if let Some(units) = units {
            json.insert(key.to_owned(), units.into());
        }
    }
    serde_json::Value::Object(json).to_string()
}

/// Consumed capacity (when the caller asked for it) and query/scan counts.
pub(super) fn record_output(span: &Span, output: &Output) {
    macro_rules! single {
        ($($module:ident :: $ty:ident),* $(,)?) => {
            $(if let Some(output) = output.downcast_ref::<op::$module::$ty>() {
                output.consumed_capacity.iter().collect::<Vec<_>>()
            } else)* { Vec::new() }
        };
    }
    macro_rules! many {
        ($($module:ident :: $ty:ident),* $(,)?) => {
            $(if let Some(output) = output.downcast_ref::<op::$module::$ty>() {
                output.consumed_capacity.iter().flatten().collect::<Vec<_>>()
            } else)* { Vec::new() }
        };
    }
    let mut capacity = single!(
        put_item::PutItemOutput,
        get_item::GetItemOutput,
        update_item::UpdateItemOutput,
        delete_item::DeleteItemOutput,
        query::QueryOutput,
        scan::ScanOutput,
    );
    if capacity.is_empty() {
        capacity = many!(
            batch_write_item::BatchWriteItemOutput,
            batch_get_item::BatchGetItemOutput,
            transact_write_items::TransactWriteItemsOutput,
            transact_get_items::TransactGetItemsOutput,
        );
    }
    if !capacity.is_empty() {
        let json = capacity.into_iter().map(consumed_capacity_json).collect();
        span.set_attribute(attr::DYNAMODB_CONSUMED_CAPACITY, string_array(json));
    }
    let counts = if let Some(output) = output.downcast_ref::<op::query::QueryOutput>() {
        Some((output.count, output.scanned_count))
    } else {
        output
            .downcast_ref::<op::scan::ScanOutput>()
            .map(|output| (output.count, output.scanned_count))
    };
    if let Some((count, scanned_count)) = counts {
        span.set_attribute(attr::DYNAMODB_COUNT, i64::from(count));
        span.set_attribute(attr::DYNAMODB_SCANNED_COUNT, i64::from(scanned_count));
    }
}
