-- One row per actor: its definition and the union of its lifecycle transitions.
CREATE OR REPLACE VIEW actors AS
WITH definition AS (
    SELECT * FROM actor_definition_events
    QUALIFY row_number() OVER (
        PARTITION BY namespace, cluster, session, actor_id ORDER BY event_time DESC) = 1
),
transitions AS (
    SELECT DISTINCT namespace, cluster, session, actor_id, state, state_time, seq, event_time,
           node_id, worker_id, pid, port, repr_name, restart_reason, death_cause
    FROM actor_lifecycle_events
),
history AS (
    SELECT namespace, cluster, session, actor_id,
           arg_max(state, (state_time, event_time, seq)) FILTER (state IS NOT NULL) AS state,
           arg_max(node_id, state_time) FILTER (node_id IS NOT NULL) AS node_id,
           arg_max(worker_id, state_time) FILTER (worker_id IS NOT NULL) AS worker_id,
           arg_max(pid, state_time) FILTER (pid IS NOT NULL) AS pid,
           arg_max(port, state_time) FILTER (port IS NOT NULL) AS port,
           arg_max(repr_name, state_time) FILTER (repr_name <> '') AS repr_name,
           arg_max(death_cause, state_time) FILTER (death_cause IS NOT NULL) AS death_cause,
           count(DISTINCT state_time) FILTER (state = 'RESTARTING') AS num_restarts,
           count(DISTINCT state_time) FILTER (
               state = 'RESTARTING' AND restart_reason = 'LINEAGE_RECONSTRUCTION')
               AS num_restarts_due_to_lineage_reconstruction,
           count(DISTINCT state_time) FILTER (
               state = 'RESTARTING' AND restart_reason = 'NODE_PREEMPTION')
               AS num_restarts_due_to_node_preemption,
           min(state_time) FILTER (state = 'ALIVE') AS start_time,
           -- GCS publishes a dead actor again (e.g. when its owner exits); Ray keeps
           -- the first death's end time.
           min(state_time) FILTER (state = 'DEAD') AS end_time,
           max(state_time) AS last_transition_time
    FROM transitions
    GROUP BY ALL
)
SELECT
    namespace, cluster, session, actor_id,
    d.class_name,
    h.state,
    d.job_id,
    d.name,
    h.node_id,
    h.worker_id,
    h.pid,
    h.port,
    d.ray_namespace,
    d.serialized_runtime_env,
    d.required_resources,
    h.death_cause,
    d.is_detached,
    d.placement_group_id,
    coalesce(h.repr_name, '') AS repr_name,
    h.num_restarts,
    h.num_restarts_due_to_lineage_reconstruction,
    h.num_restarts_due_to_node_preemption,
    nullif(d.call_site, '') AS call_site,
    d.label_selector,
    d.parent_id,
    to_us(h.start_time) AS start_time,
    to_us(h.end_time) AS end_time,
    to_us(h.last_transition_time) AS last_transition_time
FROM definition d
FULL OUTER JOIN history h USING (namespace, cluster, session, actor_id);
