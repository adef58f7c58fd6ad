-- Event schema v2 (schemas/avro/Event.v2.avsc, id 5): the end user's keyed digest and the LLM
-- request digest get their events columns, and v2 records get the Avro fast path too.
--
-- Both columns default to '' like the other optional strings, so v1 rows (old data, and v1
-- records still in flight) read as "not known"; nothing of v1 is renamed or moved.
ALTER TABLE events ADD COLUMN IF NOT EXISTS end_user_id String DEFAULT '' AFTER parent_step_id
;
ALTER TABLE events ADD COLUMN IF NOT EXISTS request_digest String DEFAULT '' AFTER cost_usd
;
-- The v2 staging table and its view: 0005's pair for Event v1, with exactly v2's two additions
-- (staging column end_user_id after payload, request_digest at the end of the llm tuple; each
-- mapped to its events column and checked for UTF-8 like every other string). A migration is
-- history, so this is a copy rather than an edit of 0005: v1 containers keep going to
-- events_avro_staging, v2 containers (containers.STAGED_SCHEMAS maps each writer schema to its
-- staging table) come here. Column names and types mirror ClickHouse's inference for Event v2
-- (tests/integration/test_sink_avro_contract.py checks it), and the view mirrors
-- sink/rows.py event_row() for v2 records (the same test checks both paths store identical rows).
CREATE TABLE IF NOT EXISTS events_avro_staging_v2
(
    -- the value's Confluent framing (magic byte, schema id), read past rather than cut off
    sink_head FixedString(5),
    event_id String,
    tenant_id String,
    agent_id String,
    agent_version String,
    environment String,
    run_id String,
    session_id Nullable(String),
    parent_run_id Nullable(String),
    parent_step_id Nullable(String),
    seq Int64,
    ts_us Int64,
    emitted_us Int64,
    sdk_version String,
    capture_mode Enum8('METADATA_ONLY' = 0, 'REDACTED' = 1, 'SECURE_REFERENCE' = 2),
    policy_version String,
    attributes Map(String, String),
    redaction Nullable(Tuple(policy_version String, rule_counts Map(String, Int64))),
    kind Enum8('RUN_START' = 0, 'RUN_END' = 1, 'STEP' = 2, 'FAILURE' = 3, 'DECISION' = 4, 'QUALITY_SIGNAL' = 5, 'FEEDBACK' = 6, 'COMMAND_ACK' = 7),
    payload Variant(
        Tuple(command_id String, command_type String, status String, detail Nullable(String)),
        Tuple(decision_type String, selected String, candidates Array(String), reason_code String, confidence Nullable(Float64), step_id Nullable(String)),
        Tuple(entrypoint String, role Nullable(String), sampled Bool),
        Tuple(failure_type Enum8('TOOL' = 0, 'MODEL' = 1, 'RETRIEVAL' = 2, 'ORCHESTRATION' = 3, 'POLICY' = 4, 'BUDGET' = 5, 'UNKNOWN' = 6), failure_code String, step_id Nullable(String), message Nullable(String), retryable Bool),
        Tuple(interaction_id String, feedback_type String, value String, source String),
        Tuple(signal_type String, signal_code String, value Bool, weight Nullable(Float64), step_id Nullable(String)),
        Tuple(status Enum8('SUCCESS' = 0, 'FAILURE' = 1, 'PARTIAL' = 2), outcome String, started_us Int64, duration_ms Float64, step_count Int32, llm_calls Int32, input_tokens Int64, output_tokens Int64, cost_usd Float64),
        Tuple(step_id String, step_kind Enum8('PLAN' = 0, 'RETRIEVAL' = 1, 'TOOL' = 2, 'LLM' = 3, 'RESPOND' = 4, 'HANDOFF' = 5, 'APPROVAL' = 6, 'GUARDRAIL' = 7, 'CUSTOM' = 8), name String, status Enum8('OK' = 0, 'ERROR' = 1, 'TIMEOUT' = 2, 'CANCELLED' = 3), started_us Int64, latency_ms Float64, attempt Int32, retry_of Nullable(String), llm Nullable(Tuple(provider String, operation String, request_model String, response_model Nullable(String), input_tokens Int64, output_tokens Int64, cache_read_tokens Int64, cache_write_tokens Int64, cost_usd Float64, finish_reasons Array(String), tool_calls Array(String), request_digest Nullable(String))), tool Nullable(Tuple(tool_name String, call_id Nullable(String), args_digest Nullable(String))), handoff Nullable(Tuple(to_agent_id String, to_run_id Nullable(String), role Nullable(String))), approval Nullable(Tuple(action_digest String, decision String, approval_latency_ms Float64)), fallback Nullable(Tuple(source String, target String, reason String, preserves_safety_posture Bool)), content Nullable(Tuple(preview Nullable(String), reference Nullable(String))))
    ),
    -- Event v2's envelope addition (appended after payload, as in the schema)
    end_user_id Nullable(String),
    -- appended by the sink after each record (not part of the Event schema): the tenant's
    -- retention, and a constant mark that catches a body whose length was not what its schema
    -- says (trailing bytes would otherwise shift every later field and record)
    sink_retention_days Int32,
    sink_mark FixedString(4)
)
ENGINE = Null
;
-- Mirrors sink/rows.py event_row() column by column; tests/integration/test_sink_avro_contract.py
-- checks both paths give identical rows for every payload branch. payload is the same JSON
-- text orjson writes there (sorted keys, no spaces, absent optionals dropped, floats with a
-- fraction); strings are written by toJSONString without escaping '/' (the SETTINGS below; the
-- sink also sets it per insert).
--
-- Cost, not style: most expressions here run over every row of the block (short-circuit
-- evaluation, below, skips a branch only where ClickHouse deems it worth filtering the branch's
-- inputs), and each string function copies a column. So a field of a payload
-- branch is read as assumeNotNull(tupleElement(branch, 'field')) with no if(kind = ...) around
-- it: for a row of another kind the branch is NULL and its fields hold the type's default ('' or
-- 0), which is the column's default too, and a NULL optional inside a present branch holds ''
-- the same way. Only enums (whose default is their first name, not '') keep the kind test.
-- Measured on 50k-row blocks: ~190 ms for the view against ~330 ms with ifNull/if forms.
CREATE MATERIALIZED VIEW IF NOT EXISTS events_avro_v2_mv TO events AS
SELECT
    tenant_id,
    fromUnixTimestamp64Micro(ts_us, 'UTC') AS ts,
    event_id,
    agent_id,
    agent_version,
    environment,
    run_id,
    assumeNotNull(session_id) AS session_id,
    assumeNotNull(parent_run_id) AS parent_run_id,
    assumeNotNull(parent_step_id) AS parent_step_id,
    assumeNotNull(end_user_id) AS end_user_id,
    -- the Python mapper's rejections, as one check: the container is refused as a whole
    toUInt32(seq + throwIf(
        seq < 0 OR seq > 4294967295
        OR tenant_id = '' OR run_id = '' OR event_id = ''
        OR NOT branch_ok
        OR st_attempt < 0 OR st_attempt > 65535
        OR least(llm_in, llm_out, llm_cr, llm_cw) < 0
        OR arrayMin(mapValues(rule_counts)) < 0
        OR NOT utf8_ok OR sink_mark != 'AGS1' OR sink_retention_days < 1 OR sink_retention_days > 65535,
        'agentstream: a record does not map to the events table; the sink redoes this range in Python')) AS seq,
    k AS kind,
    concat(st_step_id, assumeNotNull(tupleElement(fl, 'step_id')), assumeNotNull(tupleElement(dc, 'step_id')),
           assumeNotNull(tupleElement(qs, 'step_id'))) AS step_id,
    if(is_st, toString(assumeNotNull(tupleElement(st, 'step_kind'))), '') AS step_kind,
    concat(assumeNotNull(tupleElement(rs, 'entrypoint')), assumeNotNull(tupleElement(st, 'name'))) AS name,
    if(is_st, toString(assumeNotNull(tupleElement(st, 'status'))), '') AS status,
    fromUnixTimestamp64Micro(multiIf(is_st, assumeNotNull(tupleElement(st, 'started_us')),
                                     is_re, assumeNotNull(tupleElement(re, 'started_us')), ts_us), 'UTC') AS started_ts,
    assumeNotNull(tupleElement(st, 'latency_ms')) AS latency_ms,
    toUInt16(st_attempt) AS attempt,
    assumeNotNull(tupleElement(st, 'retry_of')) AS retry_of,
    assumeNotNull(tupleElement(llm, 'provider')) AS provider,
    assumeNotNull(tupleElement(llm, 'request_model')) AS request_model,
    toUInt64(llm_in) AS input_tokens,
    toUInt64(llm_out) AS output_tokens,
    toUInt64(llm_cr) AS cache_read_tokens,
    toUInt64(llm_cw) AS cache_write_tokens,
    assumeNotNull(tupleElement(llm, 'cost_usd')) AS cost_usd,
    assumeNotNull(tupleElement(llm, 'request_digest')) AS request_digest,
    assumeNotNull(tupleElement(tool, 'tool_name')) AS tool_name,
    assumeNotNull(tupleElement(tool, 'args_digest')) AS args_digest,
    if(is_fl, toString(assumeNotNull(tupleElement(fl, 'failure_type'))), '') AS failure_type,
    assumeNotNull(tupleElement(fl, 'failure_code')) AS failure_code,
    assumeNotNull(tupleElement(dc, 'decision_type')) AS decision_type,
    assumeNotNull(tupleElement(dc, 'selected')) AS selected,
    tupleElement(dc, 'candidates') AS candidates,
    assumeNotNull(tupleElement(dc, 'reason_code')) AS reason_code,
    tupleElement(dc, 'confidence') AS confidence,
    assumeNotNull(tupleElement(qs, 'signal_type')) AS signal_type,
    assumeNotNull(tupleElement(qs, 'signal_code')) AS signal_code,
    tupleElement(qs, 'value') AS signal_value,
    if(is_re, toString(assumeNotNull(tupleElement(re, 'status'))), '') AS run_status,
    assumeNotNull(tupleElement(re, 'outcome')) AS outcome,
    assumeNotNull(tupleElement(re, 'duration_ms')) AS duration_ms,
    pj AS payload,
    attributes,
    toString(capture_mode) AS capture_mode,
    policy_version,
    CAST(rule_counts, 'Map(String, UInt64)') AS redaction_counts,
    toUInt16(sink_retention_days) AS retention_days
FROM
(
    SELECT
        *,
        toString(kind) AS k,
        kind = 'RUN_START' AS is_rs, kind = 'RUN_END' AS is_re, kind = 'STEP' AS is_st,
        kind = 'FAILURE' AS is_fl, kind = 'DECISION' AS is_dc, kind = 'QUALITY_SIGNAL' AS is_qs,
        kind = 'FEEDBACK' AS is_fb, kind = 'COMMAND_ACK' AS is_ca,
        variantElement(payload, 'Tuple(entrypoint String, role Nullable(String), sampled Bool)') AS rs,
        variantElement(payload, 'Tuple(status Enum8(\'SUCCESS\' = 0, \'FAILURE\' = 1, \'PARTIAL\' = 2), outcome String, started_us Int64, duration_ms Float64, step_count Int32, llm_calls Int32, input_tokens Int64, output_tokens Int64, cost_usd Float64)') AS re,
        variantElement(payload, 'Tuple(step_id String, step_kind Enum8(\'PLAN\' = 0, \'RETRIEVAL\' = 1, \'TOOL\' = 2, \'LLM\' = 3, \'RESPOND\' = 4, \'HANDOFF\' = 5, \'APPROVAL\' = 6, \'GUARDRAIL\' = 7, \'CUSTOM\' = 8), name String, status Enum8(\'OK\' = 0, \'ERROR\' = 1, \'TIMEOUT\' = 2, \'CANCELLED\' = 3), started_us Int64, latency_ms Float64, attempt Int32, retry_of Nullable(String), llm Nullable(Tuple(provider String, operation String, request_model String, response_model Nullable(String), input_tokens Int64, output_tokens Int64, cache_read_tokens Int64, cache_write_tokens Int64, cost_usd Float64, finish_reasons Array(String), tool_calls Array(String), request_digest Nullable(String))), tool Nullable(Tuple(tool_name String, call_id Nullable(String), args_digest Nullable(String))), handoff Nullable(Tuple(to_agent_id String, to_run_id Nullable(String), role Nullable(String))), approval Nullable(Tuple(action_digest String, decision String, approval_latency_ms Float64)), fallback Nullable(Tuple(source String, target String, reason String, preserves_safety_posture Bool)), content Nullable(Tuple(preview Nullable(String), reference Nullable(String))))') AS st,
        variantElement(payload, 'Tuple(failure_type Enum8(\'TOOL\' = 0, \'MODEL\' = 1, \'RETRIEVAL\' = 2, \'ORCHESTRATION\' = 3, \'POLICY\' = 4, \'BUDGET\' = 5, \'UNKNOWN\' = 6), failure_code String, step_id Nullable(String), message Nullable(String), retryable Bool)') AS fl,
        variantElement(payload, 'Tuple(decision_type String, selected String, candidates Array(String), reason_code String, confidence Nullable(Float64), step_id Nullable(String))') AS dc,
        variantElement(payload, 'Tuple(signal_type String, signal_code String, value Bool, weight Nullable(Float64), step_id Nullable(String))') AS qs,
        variantElement(payload, 'Tuple(interaction_id String, feedback_type String, value String, source String)') AS fb,
        variantElement(payload, 'Tuple(command_id String, command_type String, status String, detail Nullable(String))') AS ca,
        multiIf(is_rs, rs IS NOT NULL, is_re, re IS NOT NULL, is_st, st IS NOT NULL,
                is_fl, fl IS NOT NULL, is_dc, dc IS NOT NULL, is_qs, qs IS NOT NULL,
                is_fb, fb IS NOT NULL, is_ca, ca IS NOT NULL, false) AS branch_ok,
        ifNull(tupleElement(redaction, 'rule_counts'), map()) AS rule_counts,
        assumeNotNull(tupleElement(st, 'step_id')) AS st_step_id,
        assumeNotNull(tupleElement(st, 'attempt')) AS st_attempt,
        tupleElement(st, 'llm') AS llm,
        (is_st AND llm IS NOT NULL) AS llm_present,
        assumeNotNull(tupleElement(llm, 'input_tokens')) AS llm_in,
        assumeNotNull(tupleElement(llm, 'output_tokens')) AS llm_out,
        assumeNotNull(tupleElement(llm, 'cache_read_tokens')) AS llm_cr,
        assumeNotNull(tupleElement(llm, 'cache_write_tokens')) AS llm_cw,
        tupleElement(st, 'tool') AS tool,
        (is_st AND tool IS NOT NULL) AS tool_present,
        -- orjson's float text: a fraction on integral values, null for nan/inf
        assumeNotNull(tupleElement(re, 'cost_usd')) AS end_cost,
        if(isFinite(end_cost), if(end_cost = floor(end_cost) AND abs(end_cost) < 1e16,
           concat(toString(end_cost), '.0'), toString(end_cost)), 'null') AS jf_end_cost,
        assumeNotNull(tupleElement(qs, 'weight')) AS weight,
        if(isFinite(weight), if(weight = floor(weight) AND abs(weight) < 1e16,
           concat(toString(weight), '.0'), toString(weight)), 'null') AS jf_weight,
        -- payload JSON members, each ',"key":value' or '' when absent, in key order; an object
        -- is '{' + the members without the first comma + '}' (cheaper than arrays + lambdas)
        tupleElement(st, 'approval') AS ap,
        assumeNotNull(tupleElement(ap, 'approval_latency_ms')) AS ap_ms,
        if(ap IS NULL, '', concat(',"approval":{"action_digest":', toJSONString(assumeNotNull(tupleElement(ap, 'action_digest'))),
            ',"approval_latency_ms":', if(isFinite(ap_ms), if(ap_ms = floor(ap_ms) AND abs(ap_ms) < 1e16,
            concat(toString(ap_ms), '.0'), toString(ap_ms)), 'null'),
            ',"decision":', toJSONString(assumeNotNull(tupleElement(ap, 'decision'))), '}')) AS st_approval,
        tupleElement(st, 'content') AS ct,
        concat(
            if(isNull(tupleElement(ct, 'preview')), '', concat(',"preview":', toJSONString(tupleElement(ct, 'preview')))),
            if(isNull(tupleElement(ct, 'reference')), '', concat(',"reference":', toJSONString(tupleElement(ct, 'reference'))))) AS ct_body,
        if(ct IS NULL OR ct_body = '', '', concat(',"content":{', substring(ct_body, 2), '}')) AS st_content,
        tupleElement(st, 'fallback') AS fbk,
        if(fbk IS NULL, '', concat(',"fallback":{"preserves_safety_posture":',
            if(assumeNotNull(tupleElement(fbk, 'preserves_safety_posture')), 'true', 'false'),
            ',"reason":', toJSONString(assumeNotNull(tupleElement(fbk, 'reason'))),
            ',"source":', toJSONString(assumeNotNull(tupleElement(fbk, 'source'))),
            ',"target":', toJSONString(assumeNotNull(tupleElement(fbk, 'target'))), '}')) AS st_fallback,
        tupleElement(st, 'handoff') AS ho,
        if(ho IS NULL, '', concat(',"handoff":{', substring(concat(
            if(isNull(tupleElement(ho, 'role')), '', concat(',"role":', toJSONString(tupleElement(ho, 'role')))),
            ',"to_agent_id":', toJSONString(assumeNotNull(tupleElement(ho, 'to_agent_id'))),
            if(isNull(tupleElement(ho, 'to_run_id')), '', concat(',"to_run_id":', toJSONString(tupleElement(ho, 'to_run_id'))))), 2),
            '}')) AS st_handoff,
        if(NOT llm_present, '', concat(',"llm":{', substring(concat(
            if(empty(tupleElement(llm, 'finish_reasons')), '', concat(',"finish_reasons":', toJSONString(tupleElement(llm, 'finish_reasons')))),
            ',"operation":', toJSONString(assumeNotNull(tupleElement(llm, 'operation'))),
            if(isNull(tupleElement(llm, 'response_model')), '', concat(',"response_model":', toJSONString(tupleElement(llm, 'response_model')))),
            if(empty(tupleElement(llm, 'tool_calls')), '', concat(',"tool_calls":', toJSONString(tupleElement(llm, 'tool_calls'))))), 2),
            '}')) AS st_llm,
        if(NOT tool_present OR isNull(tupleElement(tool, 'call_id')), '',
           concat(',"tool":{"call_id":', toJSONString(tupleElement(tool, 'call_id')), '}')) AS st_tool,
        concat('{', substring(multiIf(
            is_st, concat(st_approval, st_content, st_fallback, st_handoff, st_llm, st_tool),
            is_rs, concat(
                if(isNull(tupleElement(rs, 'role')), '', concat(',"role":', toJSONString(tupleElement(rs, 'role')))),
                ',"sampled":', if(assumeNotNull(tupleElement(rs, 'sampled')), 'true', 'false')),
            is_re, concat(
                ',"cost_usd":', jf_end_cost,
                ',"input_tokens":', toString(assumeNotNull(tupleElement(re, 'input_tokens'))),
                ',"llm_calls":', toString(assumeNotNull(tupleElement(re, 'llm_calls'))),
                ',"output_tokens":', toString(assumeNotNull(tupleElement(re, 'output_tokens'))),
                ',"step_count":', toString(assumeNotNull(tupleElement(re, 'step_count')))),
            is_fl, concat(
                if(isNull(tupleElement(fl, 'message')), '', concat(',"message":', toJSONString(tupleElement(fl, 'message')))),
                ',"retryable":', if(assumeNotNull(tupleElement(fl, 'retryable')), 'true', 'false')),
            is_qs, if(isNull(tupleElement(qs, 'weight')), '', concat(',"weight":', jf_weight)),
            is_fb, concat(
                ',"feedback_type":', toJSONString(assumeNotNull(tupleElement(fb, 'feedback_type'))),
                ',"interaction_id":', toJSONString(assumeNotNull(tupleElement(fb, 'interaction_id'))),
                ',"source":', toJSONString(assumeNotNull(tupleElement(fb, 'source'))),
                ',"value":', toJSONString(assumeNotNull(tupleElement(fb, 'value')))),
            is_ca, concat(
                ',"command_id":', toJSONString(assumeNotNull(tupleElement(ca, 'command_id'))),
                ',"command_type":', toJSONString(assumeNotNull(tupleElement(ca, 'command_type'))),
                if(isNull(tupleElement(ca, 'detail')), '', concat(',"detail":', toJSONString(tupleElement(ca, 'detail')))),
                ',"status":', toJSONString(assumeNotNull(tupleElement(ca, 'status')))),
            ''), 2), '}') AS pj,
        -- fastavro refuses strings that are not UTF-8 (ClickHouse would store them). Every string
        -- of a record lands in a column or in pj, except the few listed here. A list's items are
        -- joined with an ASCII separator: joined without one, two invalid items can be valid
        -- ("Q\xc3" + "\xa9R"), and an ASCII byte can neither continue nor start a multi-byte
        -- sequence, so the joined text is valid exactly when every item is.
        isValidUTF8(event_id) AND isValidUTF8(tenant_id) AND isValidUTF8(agent_id) AND
            isValidUTF8(agent_version) AND isValidUTF8(environment) AND isValidUTF8(run_id) AND
            isValidUTF8(assumeNotNull(session_id)) AND isValidUTF8(assumeNotNull(parent_run_id)) AND
            isValidUTF8(assumeNotNull(parent_step_id)) AND isValidUTF8(sdk_version) AND
            isValidUTF8(policy_version) AND isValidUTF8(arrayStringConcat(mapKeys(attributes), '\n')) AND
            isValidUTF8(arrayStringConcat(mapValues(attributes), '\n')) AND
            isValidUTF8(assumeNotNull(tupleElement(redaction, 'policy_version'))) AND
            isValidUTF8(arrayStringConcat(mapKeys(rule_counts), '\n')) AND isValidUTF8(pj) AND
            isValidUTF8(st_step_id) AND isValidUTF8(assumeNotNull(tupleElement(st, 'name'))) AND
            isValidUTF8(assumeNotNull(tupleElement(st, 'retry_of'))) AND
            isValidUTF8(assumeNotNull(tupleElement(rs, 'entrypoint'))) AND
            isValidUTF8(assumeNotNull(tupleElement(re, 'outcome'))) AND
            isValidUTF8(assumeNotNull(tupleElement(llm, 'provider'))) AND
            isValidUTF8(assumeNotNull(tupleElement(llm, 'request_model'))) AND
            isValidUTF8(assumeNotNull(tupleElement(llm, 'request_digest'))) AND
            isValidUTF8(assumeNotNull(end_user_id)) AND
            isValidUTF8(assumeNotNull(tupleElement(tool, 'tool_name'))) AND
            isValidUTF8(assumeNotNull(tupleElement(tool, 'args_digest'))) AND
            isValidUTF8(assumeNotNull(tupleElement(fl, 'failure_code'))) AND
            isValidUTF8(assumeNotNull(tupleElement(fl, 'step_id'))) AND
            isValidUTF8(assumeNotNull(tupleElement(dc, 'decision_type'))) AND
            isValidUTF8(assumeNotNull(tupleElement(dc, 'selected'))) AND
            isValidUTF8(arrayStringConcat(tupleElement(dc, 'candidates'), '\n')) AND
            isValidUTF8(assumeNotNull(tupleElement(dc, 'reason_code'))) AND
            isValidUTF8(assumeNotNull(tupleElement(dc, 'step_id'))) AND
            isValidUTF8(assumeNotNull(tupleElement(qs, 'signal_type'))) AND
            isValidUTF8(assumeNotNull(tupleElement(qs, 'signal_code'))) AND
            isValidUTF8(assumeNotNull(tupleElement(qs, 'step_id'))) AS utf8_ok
    FROM events_avro_staging_v2
)
-- Short-circuit evaluation as ClickHouse's default ('enable'): the whole insert ~15% faster than
-- with it off; 'force_enable' filters the wide payload columns once per branch, ~2x slower.
-- Nothing here relies on it (no branch can throw). chDB does not apply it from here, so the sink
-- also sets it per insert.
SETTINGS output_format_json_escape_forward_slashes = 0, short_circuit_function_evaluation = 'enable'
;
