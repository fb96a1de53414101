//! Global Resiliency calls: ReplicateInstance, the traffic distribution groups of an
//! instance, and their traffic distribution. A replica shares the source's instance id;
//! calls about the replica itself (DescribeInstance, DeleteInstance) go to a [`Target`] in
//! the replica's region, so that the rate limiter keys them by that region.

use std::collections::BTreeMap;

use aws_sdk_connect::types::{
    AgentConfig, Distribution, ReplicationConfiguration, SignInConfig, SignInDistribution,
    TelephonyConfig,
};

use super::client::{ConnectClient, Target, malformed};
use super::error::{AwsError, Operation};
use super::instance::{ObservedReplication, TrafficGroup, TrafficSplit};

/// DescribeInstance's `ReplicationConfiguration` in the client's terms.
pub(super) fn observed_replication(config: &ReplicationConfiguration) -> ObservedReplication {
    ObservedReplication {
        source_region: config.source_region().map(str::to_owned),
        global_sign_in_endpoint: config.global_sign_in_endpoint().map(str::to_owned),
        regions: config
            .replication_status_summary_list()
            .iter()
            .filter_map(|summary| {
                Some((
                    summary.region()?.to_owned(),
                    (
                        summary
                            .replication_status()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default(),
                        summary.replication_status_reason().map(str::to_owned),
                    ),
                ))
            })
            .collect(),
    }
}

fn percentages(distributions: &[Distribution]) -> BTreeMap<String, u8> {
    distributions
        .iter()
        .map(|d| {
            (
                d.region().to_owned(),
                u8::try_from(d.percentage().clamp(0, 100)).unwrap_or_default(),
            )
        })
        .collect()
}

fn distributions(
    operation: Operation,
    split: &BTreeMap<String, u8>,
) -> Result<Vec<Distribution>, AwsError> {
    split
        .iter()
        .map(|(region, percentage)| {
            Distribution::builder()
                .region(region)
                .percentage(i32::from(*percentage))
                .build()
                .map_err(|e| malformed(operation, &e.to_string()))
        })
        .collect()
}

impl ConnectClient {
    /// ReplicateInstance of `instance_id` (in `source`'s region) into `replica_region`;
    /// returns the replica's ARN. Take [`Self::lifecycle_slot`] first.
    pub async fn replicate_instance(
        &self,
        source: &Target,
        instance_id: &str,
        replica_region: &str,
        replica_alias: &str,
        client_token: &str,
    ) -> Result<String, AwsError> {
        let out = self
            .call(source, Operation::ReplicateInstance, |c| {
                c.replicate_instance()
                    .instance_id(instance_id)
                    .replica_region(replica_region)
                    .replica_alias(replica_alias)
                    .client_token(client_token)
                    .send()
            })
            .await?;
        out.arn()
            .map(str::to_owned)
            .ok_or_else(|| malformed(Operation::ReplicateInstance, "the answer has no Arn"))
    }

    /// The traffic distribution groups of an instance (ListTrafficDistributionGroups with
    /// its id, all pages).
    pub async fn traffic_groups(
        &self,
        target: &Target,
        instance_id: &str,
    ) -> Result<Vec<TrafficGroup>, AwsError> {
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .call(target, Operation::ListTrafficDistributionGroups, |c| {
                    c.list_traffic_distribution_groups()
                        .instance_id(instance_id)
                        .max_results(10)
                        .set_next_token(next.clone())
                        .send()
                })
                .await?;
            out.extend(
                page.traffic_distribution_group_summary_list()
                    .iter()
                    .filter_map(|g| {
                        Some(TrafficGroup {
                            id: g.id()?.to_owned(),
                            arn: g.arn()?.to_owned(),
                            status: g.status().map(|s| s.as_str().to_owned()),
                            is_default: g.is_default(),
                        })
                    }),
            );
            match page.next_token() {
                Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                _ => return Ok(out),
            }
        }
    }

    /// GetTrafficDistribution of a group (its ARN).
    pub async fn traffic_distribution(
        &self,
        target: &Target,
        group_arn: &str,
    ) -> Result<TrafficSplit, AwsError> {
        let out = self
            .call(target, Operation::GetTrafficDistribution, |c| {
                c.get_traffic_distribution().id(group_arn).send()
            })
            .await?;
        Ok(TrafficSplit {
            telephony: out
                .telephony_config()
                .map(|t| percentages(t.distributions()))
                .unwrap_or_default(),
            agents: out
                .agent_config()
                .map(|a| percentages(a.distributions()))
                .unwrap_or_default(),
            sign_in: out
                .sign_in_config()
                .map(|s| {
                    s.distributions()
                        .iter()
                        .map(|d| (d.region().to_owned(), d.enabled()))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }

    /// UpdateTrafficDistribution of a group (its ARN): the parts of `split` that are not
    /// empty. `target` is the region that should take the traffic (AWS requires the call
    /// there, so that a failover works while the other region is down).
    pub async fn update_traffic_distribution(
        &self,
        target: &Target,
        group_arn: &str,
        split: &TrafficSplit,
    ) -> Result<(), AwsError> {
        let op = Operation::UpdateTrafficDistribution;
        let telephony = if split.telephony.is_empty() {
            None
        } else {
            Some(
                TelephonyConfig::builder()
                    .set_distributions(Some(distributions(op, &split.telephony)?))
                    .build()
                    .map_err(|e| malformed(op, &e.to_string()))?,
            )
        };
        let agents = if split.agents.is_empty() {
            None
        } else {
            Some(
                AgentConfig::builder()
                    .set_distributions(Some(distributions(op, &split.agents)?))
                    .build()
                    .map_err(|e| malformed(op, &e.to_string()))?,
            )
        };
        let sign_in = if split.sign_in.is_empty() {
            None
        } else {
            let entries = split
                .sign_in
                .iter()
                .map(|(region, enabled)| {
                    SignInDistribution::builder()
                        .region(region)
                        .enabled(*enabled)
                        .build()
                        .map_err(|e| malformed(op, &e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Some(
                SignInConfig::builder()
                    .set_distributions(Some(entries))
                    .build()
                    .map_err(|e| malformed(op, &e.to_string()))?,
            )
        };
        self.call(target, op, |c| {
            c.update_traffic_distribution()
                .id(group_arn)
                .set_telephony_config(telephony)
                .set_agent_config(agents)
                .set_sign_in_config(sign_in)
                .send()
        })
        .await?;
        Ok(())
    }
}
