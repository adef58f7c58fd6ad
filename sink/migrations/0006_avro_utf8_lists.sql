-- The Avro view's UTF-8 check, corrected. 0005 checked a list (attribute keys and values,
-- redaction rule names, decision candidates) as its items joined with no separator, so two
-- items that are each invalid UTF-8 could join into a valid string ("Q\xc3" + "\xa9R"): the
-- fast path stored a record the Python mapper (the reference) sends to the DLQ. Items are now
-- joined with '\n': an ASCII byte can neither continue a multi-byte sequence nor be one, so
-- the joined text is valid exactly when every item is. The rest of the query is 0005's, as is.
--
-- MODIFY QUERY swaps the view's query in one step: a sink inserting meanwhile never finds the
-- staging table without its view (a DROP + CREATE would silently drop that insert).
ALTER TABLE events_avro_mv MODIFY QUERY
SELECT
    tenant_id,
    fromUnixTimestamp64Micro(ts_us, 'UTC') AS ts,
    event_id,
    agent_id,
    agent_version,
    environment,
    run_id,
    ifNull(session_id, '') AS session_id,
    ifNull(parent_run_id, '') AS parent_run_id,
    ifNull(parent_step_id, '') AS parent_step_id,
    -- the Python mapper's rejections, as one check: the container is refused as a whole
    toUInt32(seq + throwIf(
        seq < 0 OR seq > 4294967295
        OR tenant_id = '' OR run_id = '' OR event_id = ''
        OR NOT branch_ok
        OR (k = 'STEP' AND (st_attempt < 0 OR st_attempt > 65535))
        OR (k = 'STEP' AND llm_present AND least(llm_in, llm_out, llm_cr, llm_cw) < 0)
        OR arrayMin(mapValues(rule_counts)) < 0
        OR NOT utf8_ok OR sink_mark != 'AGS1' OR sink_retention_days < 1 OR sink_retention_days > 65535,
        'agentstream: a record does not map to the events table; the sink redoes this range in Python')) AS seq,
    k AS kind,
    multiIf(k = 'STEP', st_step_id,
            k = 'FAILURE', ifNull(tupleElement(fl, 'step_id'), ''),
            k = 'DECISION', ifNull(tupleElement(dc, 'step_id'), ''),
            k = 'QUALITY_SIGNAL', ifNull(tupleElement(qs, 'step_id'), ''), '') AS step_id,
    if(k = 'STEP', toString(assumeNotNull(tupleElement(st, 'step_kind'))), '') AS step_kind,
    multiIf(k = 'RUN_START', assumeNotNull(tupleElement(rs, 'entrypoint')),
            k = 'STEP', assumeNotNull(tupleElement(st, 'name')), '') AS name,
    if(k = 'STEP', toString(assumeNotNull(tupleElement(st, 'status'))), '') AS status,
    fromUnixTimestamp64Micro(multiIf(k = 'STEP', assumeNotNull(tupleElement(st, 'started_us')),
                                     k = 'RUN_END', assumeNotNull(tupleElement(re, 'started_us')), ts_us), 'UTC') AS started_ts,
    if(k = 'STEP', assumeNotNull(tupleElement(st, 'latency_ms')), 0) AS latency_ms,
    toUInt16(if(k = 'STEP', st_attempt, 0)) AS attempt,
    if(k = 'STEP', ifNull(tupleElement(st, 'retry_of'), ''), '') AS retry_of,
    if(llm_present, assumeNotNull(tupleElement(llm, 'provider')), '') AS provider,
    if(llm_present, assumeNotNull(tupleElement(llm, 'request_model')), '') AS request_model,
    toUInt64(if(llm_present, llm_in, 0)) AS input_tokens,
    toUInt64(if(llm_present, llm_out, 0)) AS output_tokens,
    toUInt64(if(llm_present, llm_cr, 0)) AS cache_read_tokens,
    toUInt64(if(llm_present, llm_cw, 0)) AS cache_write_tokens,
    if(llm_present, assumeNotNull(tupleElement(llm, 'cost_usd')), 0) AS cost_usd,
    if(tool_present, assumeNotNull(tupleElement(tool, 'tool_name')), '') AS tool_name,
    if(tool_present, ifNull(tupleElement(tool, 'args_digest'), ''), '') AS args_digest,
    if(k = 'FAILURE', toString(assumeNotNull(tupleElement(fl, 'failure_type'))), '') AS failure_type,
    if(k = 'FAILURE', assumeNotNull(tupleElement(fl, 'failure_code')), '') AS failure_code,
    if(k = 'DECISION', assumeNotNull(tupleElement(dc, 'decision_type')), '') AS decision_type,
    if(k = 'DECISION', assumeNotNull(tupleElement(dc, 'selected')), '') AS selected,
    if(k = 'DECISION', tupleElement(dc, 'candidates'), []) AS candidates,
    if(k = 'DECISION', assumeNotNull(tupleElement(dc, 'reason_code')), '') AS reason_code,
    if(k = 'DECISION', tupleElement(dc, 'confidence'), NULL) AS confidence,
    if(k = 'QUALITY_SIGNAL', assumeNotNull(tupleElement(qs, 'signal_type')), '') AS signal_type,
    if(k = 'QUALITY_SIGNAL', assumeNotNull(tupleElement(qs, 'signal_code')), '') AS signal_code,
    if(k = 'QUALITY_SIGNAL', tupleElement(qs, 'value'), NULL) AS signal_value,
    if(k = 'RUN_END', toString(assumeNotNull(tupleElement(re, 'status'))), '') AS run_status,
    if(k = 'RUN_END', assumeNotNull(tupleElement(re, 'outcome')), '') AS outcome,
    if(k = 'RUN_END', assumeNotNull(tupleElement(re, 'duration_ms')), 0) AS duration_ms,
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
        variantElement(payload, 'Tuple(entrypoint String, role Nullable(String), sampled Bool)') AS rs,
        variantElement(payload, 'Tuple(status Enum8(\'SUCCESS\' = 0, \'FAILURE\' = 1, \'PARTIAL\' = 2), outcome String, started_us Int64, duration_ms Float64, step_count Int32, llm_calls Int32, input_tokens Int64, output_tokens Int64, cost_usd Float64)') AS re,
        variantElement(payload, 'Tuple(step_id String, step_kind Enum8(\'PLAN\' = 0, \'RETRIEVAL\' = 1, \'TOOL\' = 2, \'LLM\' = 3, \'RESPOND\' = 4, \'HANDOFF\' = 5, \'APPROVAL\' = 6, \'GUARDRAIL\' = 7, \'CUSTOM\' = 8), name String, status Enum8(\'OK\' = 0, \'ERROR\' = 1, \'TIMEOUT\' = 2, \'CANCELLED\' = 3), started_us Int64, latency_ms Float64, attempt Int32, retry_of Nullable(String), llm Nullable(Tuple(provider String, operation String, request_model String, response_model Nullable(String), input_tokens Int64, output_tokens Int64, cache_read_tokens Int64, cache_write_tokens Int64, cost_usd Float64, finish_reasons Array(String), tool_calls Array(String))), tool Nullable(Tuple(tool_name String, call_id Nullable(String), args_digest Nullable(String))), handoff Nullable(Tuple(to_agent_id String, to_run_id Nullable(String), role Nullable(String))), approval Nullable(Tuple(action_digest String, decision String, approval_latency_ms Float64)), fallback Nullable(Tuple(source String, target String, reason String, preserves_safety_posture Bool)), content Nullable(Tuple(preview Nullable(String), reference Nullable(String))))') AS st,
        variantElement(payload, 'Tuple(failure_type Enum8(\'TOOL\' = 0, \'MODEL\' = 1, \'RETRIEVAL\' = 2, \'ORCHESTRATION\' = 3, \'POLICY\' = 4, \'BUDGET\' = 5, \'UNKNOWN\' = 6), failure_code String, step_id Nullable(String), message Nullable(String), retryable Bool)') AS fl,
        variantElement(payload, 'Tuple(decision_type String, selected String, candidates Array(String), reason_code String, confidence Nullable(Float64), step_id Nullable(String))') AS dc,
        variantElement(payload, 'Tuple(signal_type String, signal_code String, value Bool, weight Nullable(Float64), step_id Nullable(String))') AS qs,
        variantElement(payload, 'Tuple(interaction_id String, feedback_type String, value String, source String)') AS fb,
        variantElement(payload, 'Tuple(command_id String, command_type String, status String, detail Nullable(String))') AS ca,
        multiIf(k = 'RUN_START', rs IS NOT NULL, k = 'RUN_END', re IS NOT NULL, k = 'STEP', st IS NOT NULL,
                k = 'FAILURE', fl IS NOT NULL, k = 'DECISION', dc IS NOT NULL, k = 'QUALITY_SIGNAL', qs IS NOT NULL,
                k = 'FEEDBACK', fb IS NOT NULL, k = 'COMMAND_ACK', ca IS NOT NULL, false) AS branch_ok,
        ifNull(tupleElement(redaction, 'rule_counts'), map()) AS rule_counts,
        ifNull(tupleElement(st, 'step_id'), '') AS st_step_id,
        ifNull(tupleElement(st, 'attempt'), 0) AS st_attempt,
        tupleElement(st, 'llm') AS llm,
        (k = 'STEP' AND llm IS NOT NULL) AS llm_present,
        ifNull(tupleElement(llm, 'input_tokens'), 0) AS llm_in,
        ifNull(tupleElement(llm, 'output_tokens'), 0) AS llm_out,
        ifNull(tupleElement(llm, 'cache_read_tokens'), 0) AS llm_cr,
        ifNull(tupleElement(llm, 'cache_write_tokens'), 0) AS llm_cw,
        tupleElement(st, 'tool') AS tool,
        (k = 'STEP' AND tool IS NOT NULL) AS tool_present,
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
            k = 'STEP', concat(st_approval, st_content, st_fallback, st_handoff, st_llm, st_tool),
            k = 'RUN_START', concat(
                if(isNull(tupleElement(rs, 'role')), '', concat(',"role":', toJSONString(tupleElement(rs, 'role')))),
                ',"sampled":', if(assumeNotNull(tupleElement(rs, 'sampled')), 'true', 'false')),
            k = 'RUN_END', concat(
                ',"cost_usd":', jf_end_cost,
                ',"input_tokens":', toString(assumeNotNull(tupleElement(re, 'input_tokens'))),
                ',"llm_calls":', toString(assumeNotNull(tupleElement(re, 'llm_calls'))),
                ',"output_tokens":', toString(assumeNotNull(tupleElement(re, 'output_tokens'))),
                ',"step_count":', toString(assumeNotNull(tupleElement(re, 'step_count')))),
            k = 'FAILURE', concat(
                if(isNull(tupleElement(fl, 'message')), '', concat(',"message":', toJSONString(tupleElement(fl, 'message')))),
                ',"retryable":', if(assumeNotNull(tupleElement(fl, 'retryable')), 'true', 'false')),
            k = 'QUALITY_SIGNAL', if(isNull(tupleElement(qs, 'weight')), '', concat(',"weight":', jf_weight)),
            k = 'FEEDBACK', concat(
                ',"feedback_type":', toJSONString(assumeNotNull(tupleElement(fb, 'feedback_type'))),
                ',"interaction_id":', toJSONString(assumeNotNull(tupleElement(fb, 'interaction_id'))),
                ',"source":', toJSONString(assumeNotNull(tupleElement(fb, 'source'))),
                ',"value":', toJSONString(assumeNotNull(tupleElement(fb, 'value')))),
            k = 'COMMAND_ACK', concat(
                ',"command_id":', toJSONString(assumeNotNull(tupleElement(ca, 'command_id'))),
                ',"command_type":', toJSONString(assumeNotNull(tupleElement(ca, 'command_type'))),
                if(isNull(tupleElement(ca, 'detail')), '', concat(',"detail":', toJSONString(tupleElement(ca, 'detail')))),
                ',"status":', toJSONString(assumeNotNull(tupleElement(ca, 'status')))),
            ''), 2), '}') AS pj,
        -- fastavro refuses strings that are not UTF-8 (ClickHouse would store them). Every string
        -- of a record lands in a column or in pj, except the few listed here. A list's items are
        -- joined with an ASCII separator: joined without one, two invalid items can be valid.
        isValidUTF8(event_id) AND isValidUTF8(tenant_id) AND isValidUTF8(agent_id) AND
            isValidUTF8(agent_version) AND isValidUTF8(environment) AND isValidUTF8(run_id) AND
            isValidUTF8(ifNull(session_id, '')) AND isValidUTF8(ifNull(parent_run_id, '')) AND
            isValidUTF8(ifNull(parent_step_id, '')) AND isValidUTF8(sdk_version) AND
            isValidUTF8(policy_version) AND isValidUTF8(arrayStringConcat(mapKeys(attributes), '\n')) AND
            isValidUTF8(arrayStringConcat(mapValues(attributes), '\n')) AND
            isValidUTF8(ifNull(tupleElement(redaction, 'policy_version'), '')) AND
            isValidUTF8(arrayStringConcat(mapKeys(rule_counts), '\n')) AND isValidUTF8(pj) AND
            isValidUTF8(st_step_id) AND isValidUTF8(ifNull(tupleElement(st, 'name'), '')) AND
            isValidUTF8(ifNull(tupleElement(st, 'retry_of'), '')) AND
            isValidUTF8(ifNull(tupleElement(rs, 'entrypoint'), '')) AND
            isValidUTF8(ifNull(tupleElement(re, 'outcome'), '')) AND
            isValidUTF8(ifNull(tupleElement(llm, 'provider'), '')) AND
            isValidUTF8(ifNull(tupleElement(llm, 'request_model'), '')) AND
            isValidUTF8(ifNull(tupleElement(tool, 'tool_name'), '')) AND
            isValidUTF8(ifNull(tupleElement(tool, 'args_digest'), '')) AND
            isValidUTF8(ifNull(tupleElement(fl, 'failure_code'), '')) AND
            isValidUTF8(ifNull(tupleElement(fl, 'step_id'), '')) AND
            isValidUTF8(ifNull(tupleElement(dc, 'decision_type'), '')) AND
            isValidUTF8(ifNull(tupleElement(dc, 'selected'), '')) AND
            isValidUTF8(arrayStringConcat(tupleElement(dc, 'candidates'), '\n')) AND
            isValidUTF8(ifNull(tupleElement(dc, 'reason_code'), '')) AND
            isValidUTF8(ifNull(tupleElement(dc, 'step_id'), '')) AND
            isValidUTF8(ifNull(tupleElement(qs, 'signal_type'), '')) AND
            isValidUTF8(ifNull(tupleElement(qs, 'signal_code'), '')) AND
            isValidUTF8(ifNull(tupleElement(qs, 'step_id'), '')) AS utf8_ok
    FROM events_avro_staging
)
-- Short-circuit evaluation filters the (wide) columns once per branch of every if/multiIf/AND:
-- measured 2x slower here; nothing in this view relies on it (no branch can throw). chDB did not
-- apply it from here, so the sink also sets it per insert.
SETTINGS output_format_json_escape_forward_slashes = 0, short_circuit_function_evaluation = 'disable'
;
