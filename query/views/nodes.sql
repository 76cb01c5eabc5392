-- One row per node: its definition, its last state, its resources while alive.
CREATE OR REPLACE VIEW nodes AS
WITH definition AS (
    SELECT * FROM node_definition_events
    QUALIFY row_number() OVER (
        PARTITION BY namespace, cluster, session, node_id ORDER BY event_time DESC) = 1
),
history AS (
    SELECT namespace, cluster, session, node_id,
           arg_max(state, (state_time, seq)) FILTER (state IS NOT NULL) AS state,
           arg_max(resources, state_time) FILTER (state = 'ALIVE' AND cardinality(resources) > 0)
               AS resources_total,
           min(state_time) FILTER (state = 'ALIVE') AS alive_time,
           max(state_time) FILTER (state = 'DEAD') AS end_time,
           arg_max(death_reason, state_time) FILTER (state = 'DEAD') AS death_reason,
           arg_max(death_reason_message, state_time) FILTER (state = 'DEAD') AS state_message
    FROM node_lifecycle_events
    GROUP BY ALL
)
SELECT
    namespace, cluster, session, node_id,
    d.node_ip_address AS node_ip,
    coalesce(map_contains(h.resources_total, 'node:__internal_head__'), false) AS is_head_node,
    h.state,
    -- Ray's compose_state_message (dashboard/utils.py).
    CASE WHEN reason_text IS NOT NULL AND h.state_message <> ''
              THEN reason_text || ': ' || h.state_message
         WHEN reason_text IS NOT NULL THEN reason_text
         ELSE nullif(h.state_message, '') END AS state_message,
    h.death_reason,
    nullif(h.state_message, '') AS death_reason_message,
    d.node_name,
    h.resources_total,
    d.labels,
    to_us(coalesce(d.start_time, h.alive_time)) AS start_time,
    to_us(h.end_time) AS end_time,
    d.hostname,
    d.instance_id,
    d.instance_type_name
FROM definition d
FULL OUTER JOIN (
    SELECT *, CASE death_reason
                  WHEN 'EXPECTED_TERMINATION' THEN 'Expected termination'
                  WHEN 'UNEXPECTED_TERMINATION' THEN 'Unexpected termination'
                  WHEN 'AUTOSCALER_DRAIN_PREEMPTED' THEN 'Terminated due to preemption'
                  WHEN 'AUTOSCALER_DRAIN_IDLE' THEN 'Terminated due to idle (no Ray activity)'
              END AS reason_text
    FROM history
) h USING (namespace, cluster, session, node_id);
