//! Type erasure for imports: decoding into `T` and publishing on the bus.

use std::any::TypeId;
use std::marker::PhantomData;

use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use switchyard::bus::TryPublishError;
use switchyard::{Bus, Topic};

use super::import::decode_payload;

pub(super) enum Refused {
    Full,
    Closed,
}

pub(super) trait Decoded: Send {
    fn try_publish(&mut self, bus: &Bus, topic: Topic) -> Result<u64, Refused>;
    fn publish(self: Box<Self>, bus: Bus, topic: Topic) -> BoxFuture<'static, Result<u64, ()>>;
}

pub(super) struct Typed<T>(pub(super) Option<T>);

impl<T: Send + Sync + 'static> Decoded for Typed<T> {
    fn try_publish(&mut self, bus: &Bus, topic: Topic) -> Result<u64, Refused> {
        let Some(ev) = self.0.take() else {
            return Err(Refused::Closed);
        };
        match bus.try_publish(topic, ev) {
            Ok(seq) => Ok(seq),
            Err(TryPublishError::Full { event, .. }) => {
                self.0 = Some(event);
                Err(Refused::Full)
            }
            Err(TryPublishError::Closed(event)) => {
                self.0 = Some(event);
                Err(Refused::Closed)
            }
        }
    }

    fn publish(self: Box<Self>, bus: Bus, topic: Topic) -> BoxFuture<'static, Result<u64, ()>> {
        Box::pin(async move {
            match self.0 {
                Some(ev) => bus.publish(topic, ev).await.map_err(|_| ()),
                None => Err(()),
            }
        })
    }
}

pub(super) trait Sink: Send + Sync {
    fn decode(&self, payload: &[u8]) -> Result<Box<dyn Decoded>, serde_json::Error>;
    fn type_id(&self) -> TypeId;
}

pub(super) struct JsonSink<T>(pub(super) PhantomData<fn() -> T>);

impl<T: DeserializeOwned + Send + Sync + 'static> Sink for JsonSink<T> {
    fn decode(&self, payload: &[u8]) -> Result<Box<dyn Decoded>, serde_json::Error> {
        Ok(Box::new(Typed(Some(decode_payload::<T>(payload)?))))
    }
    fn type_id(&self) -> TypeId {
        TypeId::of::<T>()
    }
}
