-- One row per task attempt: the union of its definition and every lifecycle transition
-- reported by any node. The state is the last transition in TaskStatus declaration
-- order (Ray's own rule), not the latest timestamp.
CREATE OR REPLACE VIEW tasks AS
WITH definitions AS (
    SELECT namespace, cluster, session, task_id, attempt_number,
           task_type AS type, task_name AS name, NULL::VARCHAR AS actor_id,
           language, func_module, func_class, func_name, required_resources,
           serialized_runtime_env, job_id, parent_task_id, placement_group_id,
           label_selector, is_detached_actor, call_site, event_time
    FROM task_definition_events
    UNION ALL
    SELECT namespace, cluster, session, task_id, attempt_number,
           'ACTOR_TASK' AS type, task_name AS name, actor_id,
           language, func_module, func_class, func_name, required_resources,
           serialized_runtime_env, job_id, parent_task_id, placement_group_id,
           label_selector, is_detached_actor, call_site, event_time
    FROM actor_task_definition_events
),
definition AS (
    SELECT * FROM definitions
    QUALIFY row_number() OVER (
        PARTITION BY namespace, cluster, session, task_id, attempt_number
        ORDER BY event_time DESC) = 1
),
transitions AS (
    SELECT namespace, cluster, session, task_id, attempt_number, state,
           task_status_rank(state) AS rank, min(state_time) AS state_time
    FROM task_lifecycle_events
    GROUP BY ALL
),
history AS (
    SELECT namespace, cluster, session, task_id, attempt_number,
           arg_max(state, rank) AS state,
           list({'state': state, 'time': state_time} ORDER BY rank) AS events,
           min(state_time) FILTER (state = 'PENDING_ARGS_AVAIL') AS creation_time,
           min(state_time) FILTER (state = 'RUNNING') AS start_time,
           arg_max(state_time, rank) FILTER (state IN ('FINISHED', 'FAILED')) AS end_time
    FROM transitions
    GROUP BY ALL
),
execution AS (
    -- Submitters report node and worker; the executing worker reports pid and logs.
    SELECT namespace, cluster, session, task_id, attempt_number,
           any_value(job_id) AS job_id,
           arg_max(node_id, task_status_rank(state)) FILTER (node_id IS NOT NULL) AS node_id,
           arg_max(worker_id, task_status_rank(state)) FILTER (worker_id IS NOT NULL) AS worker_id,
           arg_max(worker_pid, task_status_rank(state)) FILTER (worker_pid IS NOT NULL) AS worker_pid,
           arg_max(error_type, task_status_rank(state)) FILTER (error_type IS NOT NULL) AS error_type,
           arg_max(error_message, task_status_rank(state)) FILTER (error_type IS NOT NULL) AS error_message,
           arg_max({'stdout_file': stdout_file, 'stdout_start': stdout_start,
                    'stdout_end': stdout_end, 'stderr_file': stderr_file,
                    'stderr_start': stderr_start, 'stderr_end': stderr_end},
                   task_status_rank(state)) FILTER (stdout_file IS NOT NULL OR stderr_file IS NOT NULL) AS log,
           arg_max(is_debugger_paused, event_time) FILTER (is_debugger_paused IS NOT NULL) AS is_debugger_paused,
           arg_max(actor_repr_name, event_time) FILTER (actor_repr_name <> '') AS actor_repr_name
    FROM task_lifecycle_events
    GROUP BY ALL
)
SELECT
    namespace, cluster, session, task_id, attempt_number,
    d.name,
    h.state,
    d.type,
    CASE WHEN d.func_class <> '' THEN d.func_class || '.' || d.func_name
         ELSE d.func_name END AS func_or_class_name,
    coalesce(d.job_id, e.job_id) AS job_id,
    CASE d.type WHEN 'ACTOR_TASK' THEN d.actor_id
                WHEN 'ACTOR_CREATION_TASK' THEN substr(task_id, 17) END AS actor_id,
    d.parent_task_id,
    e.node_id,
    e.worker_id,
    e.worker_pid,
    e.error_type,
    e.error_message,
    d.language,
    d.required_resources,
    d.placement_group_id,
    h.creation_time,
    h.start_time,
    h.end_time,
    h.events,
    e.log.stdout_file, e.log.stdout_start, e.log.stdout_end,
    e.log.stderr_file, e.log.stderr_start, e.log.stderr_end,
    d.serialized_runtime_env,
    d.label_selector,
    d.is_detached_actor,
    d.call_site,
    e.is_debugger_paused,
    e.actor_repr_name,
    d.func_module
FROM definition d
FULL OUTER JOIN history h USING (namespace, cluster, session, task_id, attempt_number)
LEFT JOIN execution e USING (namespace, cluster, session, task_id, attempt_number);
