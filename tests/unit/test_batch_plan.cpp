// One plan per batch size (services/batch_plan.hpp): the planning forward makes each step once (sharing
// an owner's step for an equal key), later forwards take the steps back in order without making any,
// a forward that strays from its plan is an error, and a planning forward that throws leaves no plan.

#include <string>
#include <vector>

#include <visopt/services/batch_plan.hpp>

#include "catch.hpp"

using visopt::Shape;
using visopt::runtime::BatchPlan;
using visopt::runtime::BatchPlans;
using visopt::runtime::with_plan;

namespace {
struct Made {
  int id;
};

/// A stand-in operation: its step records which call made it.
struct Operation {
  int* made = nullptr;
  Made& run(BatchPlans<>& plans, int key) {
    return plans.step<Made>(this, key, [&] { return Made{++*made}; });
  }
};
}  // namespace

TEST_CASE("a plan is made by the first forward of a shape and replayed in order by the next", "[batch_plan]") {
  BatchPlans<> plans;
  int made = 0;
  Operation conv{&made}, linear{&made};
  const Shape batch8{8, 3, 224, 224}, batch1{1, 3, 224, 224};

  auto forward = [&](int key) {
    const int a = conv.run(plans, key).id;
    const int b = linear.run(plans, key).id;
    const int c = conv.run(plans, key).id;  // the same owner and key again: shares its step
    return std::vector<int>{a, b, c};
  };
  const std::vector<int> first{1, 2, 1};
  CHECK(with_plan(plans, batch8, [&] { return forward(8); }) == first);
  CHECK(made == 2);
  REQUIRE(plans.find(batch8) != nullptr);
  CHECK(plans.find(batch8)->operations() == 3);
  CHECK(plans.find(batch8)->steps() == 2);
  CHECK(plans.find(batch1) == nullptr);

  // A planned forward makes nothing and gets the same steps.
  CHECK(with_plan(plans, batch8, [&] { return forward(8); }) == first);
  CHECK(made == 2);

  // Another batch size gets a plan of its own.
  (void)with_plan(plans, batch1, [&] { return forward(1); });
  CHECK(made == 4);
  CHECK(plans.size() == 2);
  const auto described = plans.describe();
  REQUIRE(described.size() == 2);
  CHECK(described[0].input == std::vector<std::int64_t>{8, 3, 224, 224});
  CHECK(described[0].operations == 3);
  CHECK(described[0].steps == 2);
  CHECK_FALSE(described[0].captured);
}

TEST_CASE("a forward that strays from its plan is an error naming the operation", "[batch_plan]") {
  BatchPlans<> plans;
  int made = 0;
  Operation conv{&made}, linear{&made};
  const Shape shape{2, 3, 32, 32};
  with_plan(plans, shape, [&] {
    conv.run(plans, 1);
    linear.run(plans, 1);
  });
  // Another operation where the plan has conv's step.
  CHECK_THROWS_WITH(with_plan(plans, shape, [&] { linear.run(plans, 1); }),
                    Catch::Contains("operation 1 of the forward is not the one its planning forward ran"));
  // The right operation with another key.
  CHECK_THROWS_WITH(with_plan(plans, shape, [&] { conv.run(plans, 7); }), Catch::Contains("operation 1"));
  // Fewer operations than planned.
  CHECK_THROWS_WITH(with_plan(plans, shape, [&] { conv.run(plans, 1); }), Catch::Contains("ran 1 of its 2 planned operations"));
  // More operations than planned.
  CHECK_THROWS_WITH(with_plan(plans, shape,
                              [&] {
                                conv.run(plans, 1);
                                linear.run(plans, 1);
                                conv.run(plans, 1);
                              }),
                    Catch::Contains("operation 3"));
  // The plan survives the failed forwards.
  CHECK_NOTHROW(with_plan(plans, shape, [&] {
    conv.run(plans, 1);
    linear.run(plans, 1);
  }));
  CHECK(made == 2);
  // An operation outside any forward.
  CHECK_THROWS_WITH(conv.run(plans, 1), Catch::Contains("outside a planned forward"));
}

TEST_CASE("a planning forward that throws leaves no plan, and the next forward plans afresh", "[batch_plan]") {
  BatchPlans<> plans;
  int made = 0;
  Operation conv{&made};
  const Shape shape{4, 3, 64, 64};
  CHECK_THROWS_WITH(with_plan(plans, shape,
                              [&] {
                                conv.run(plans, 1);
                                visopt::fail("out of memory");
                              }),
                    Catch::Contains("out of memory"));
  CHECK(plans.find(shape) == nullptr);
  CHECK(plans.size() == 0);
  with_plan(plans, shape, [&] { conv.run(plans, 1); });
  CHECK(made == 2);
  CHECK(plans.size() == 1);
}

TEST_CASE("a backend's replay lives in the plan and shows in the report", "[batch_plan]") {
  struct Replay {
    bool done = false;
    double capture_ms = 0;
    bool captured() const { return done; }
  };
  BatchPlans<Replay> plans;
  const Shape shape{16, 3, 224, 224};
  with_plan(plans, shape, [] {});
  plans.find(shape)->replay = Replay{true, 12.5};
  plans.find(shape)->plan_ms = 40;
  const auto described = plans.describe();
  REQUIRE(described.size() == 1);
  CHECK(described[0].captured);
  CHECK(described[0].capture_ms == 12.5);
  CHECK(described[0].text() == "batch 16 [16,3,224,224]: 0 operations, 0 steps, planned in 40 ms, captured in 12 ms");
}

TEST_CASE("steps of one plan share a resource by key; a planned forward does not make one", "[batch_plan]") {
  BatchPlans<> plans;
  int built = 0;
  struct Resource {
    int id;
  };
  const Shape shape{4, 3, 64, 64};
  auto make = [&] { return std::make_shared<Resource>(Resource{++built}); };
  with_plan(plans, shape, [&] {
    const auto a = plans.shared<Resource>(std::string("conv 3x3 [4,64,16,16]"), make);
    const auto b = plans.shared<Resource>(std::string("conv 3x3 [4,64,16,16]"), make);
    const auto c = plans.shared<Resource>(std::string("conv 1x1 [4,64,16,16]"), make);
    CHECK(a == b);
    CHECK(a != c);
  });
  CHECK(built == 2);
  CHECK(plans.find(shape)->operations() == 0);  // shared resources take no place in the forward's order
  CHECK_NOTHROW(with_plan(plans, shape, [] {}));
  CHECK_THROWS_WITH(with_plan(plans, shape, [&] { (void)plans.shared<Resource>(std::string("conv"), make); }),
                    Catch::Contains("shared resources are made in the planning forward only"));
  // Another batch size has resources of its own.
  with_plan(plans, Shape{1, 3, 64, 64}, [&] { (void)plans.shared<Resource>(std::string("conv 3x3 [4,64,16,16]"), make); });
  CHECK(built == 3);
}
