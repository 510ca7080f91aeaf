//! Amazon SageMaker: the container side (train from /opt/ml, serve) of a bring-your-own-container
//! job. The client side (creating jobs through the AWS SDK) comes later.

pub mod container;
pub mod serve;
