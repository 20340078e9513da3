# frozen_string_literal: true

# Chef's own classes are not here; recipes only log through Chef::Log.
unless defined?(Chef::Log)
  module Chef
    module Log
      def self.warn(*); end

      def self.info(*); end

      def self.debug(*); end
    end
  end
end

# Evaluates the recipes the way chef-client does, as far as ordering goes:
# resources in declaration order, each action behind its guards, immediate
# notifications at once, delayed ones queued (first occurrence kept) and
# run at the end. The host decides whether an action changes anything.
class FakeConverge
  TYPES = %i[package dpkg_package apt_repository directory file template link cron execute service ruby_block].freeze

  # Properties as the resource block sets them.
  class Resource
    attr_reader :type, :name, :props, :guards, :notifications, :node
    attr_accessor :actions, :code

    # Chef resources answer node, as the recipe does.
    def initialize(type, name, node)
      @node = node
      @type = type
      @name = name
      @props = {}
      @guards = []
      @notifications = []
      @actions = [type == :ruby_block ? :run : :default]
    end

    def id
      "#{type}[#{name}]"
    end

    def action(*acts)
      @actions = acts.flatten
    end

    def only_if(&blk)
      @guards << blk
    end

    def not_if(&blk)
      @guards << -> { !blk.call }
    end

    def notifies(act, target, timing = :delayed)
      @notifications << [act, target, timing]
    end

    def block(&blk)
      @code = blk
    end

    def method_missing(prop, *args)
      @props[prop] = args.size == 1 ? args.first : args
    end

    def respond_to_missing?(*)
      true
    end
  end

  # The node: attributes read with [], and run_state.
  class Node
    attr_reader :run_state

    def initialize(attrs)
      @attrs = attrs
      @run_state = {}
    end

    def [](key)
      @attrs[key]
    end
  end

  attr_reader :node, :resources, :events

  def initialize(attrs, host)
    @node = Node.new(attrs)
    @host = host
    @resources = []
    @included = []
    @events = []
  end

  def recipe(name)
    path = File.join(COOKBOOK, 'recipes', "#{name}.rb")
    instance_eval(File.read(path), path)
  end

  def include_recipe(full)
    name = full.split('::').last
    return if @included.include?(name)

    @included << name
    recipe(name)
  end

  TYPES.each do |type|
    define_method(type) do |name, &blk|
      r = Resource.new(type, name, @node)
      r.instance_eval(&blk) if blk
      @resources << r
      r
    end
  end

  def converge
    @delayed = []
    @resources.each { |r| r.actions.each { |a| run(r, a) } }
    run(*@delayed.shift) until @delayed.empty?
    self
  end

  def find(id)
    @resources.reverse.find { |r| r.id == id } || raise("no resource #{id}")
  end

  private

  def run(res, act)
    return unless runs?(res, act) && changes?(res, act)

    @events << "#{res.id}:#{act}"
    res.notifications.each { |a, target, timing| notify(find(target), a, timing) }
  end

  def runs?(res, act)
    act != :nothing && res.guards.all?(&:call)
  end

  # A ruby_block always counts as a change, as in Chef.
  def changes?(res, act)
    return @host.call(res, act) unless res.type == :ruby_block

    res.code&.call
    true
  end

  def notify(target, act, timing)
    if timing == :immediately
      run(target, act)
    elsif !@delayed.include?([target, act])
      @delayed << [target, act]
    end
  end
end

RSpec.describe 'a converge of walden::default' do
  around do |ex|
    Dir.mktmpdir do |d|
      @root = d
      ex.run
    end
  end

  let(:envdir) { "#{@root}/etc/wal-e.d/env" }
  let(:role) do
    { 'walden' => { 'envdir' => envdir,
                    'migration' => { 'install_path' => "#{@root}/opt/wal-e",
                                     'aside_path' => "#{@root}/opt/wal-e.pre-walden",
                                     'link_target' => "#{@root}/usr/lib/walden/bin/wal-e" },
                    'env' => { 'WALE_FILE_PREFIX' => 'file://localhost/srv/walden-store',
                               'WALDEN_DRILL_DIR' => '/srv/walden-drill',
                               'PGDATA' => '/var/lib/postgresql/15/main' } } }
  end
  # The host: walden.service's state, and which files the converge changes.
  let(:service) { { enabled: true, running: false, starts: 0 } }
  let(:checks) { [] }

  def host(files_change:)
    lambda do |res, act|
      case res.type
      when :service then service_action(act)
      when :execute then true
      else files_change
      end
    end
  end

  def service_action(act)
    case act
    when :enable then !service[:enabled] && (service[:enabled] = true)
    when :start then !service[:running] && start
    when :restart then start
    else raise "unexpected service action #{act}"
    end
  end

  def start
    service[:running] = true
    service[:starts] += 1
  end

  def converge(files_change:)
    allow(Walden::Check).to receive(:service_run!) { |args| checks << [args[:config].envdir, service.dup] }
    run = FakeConverge.new(node_with(role), host(files_change: files_change))
    run.recipe('default')
    run.converge
  end

  it 'starts the agent once on a first install, then checks it from inside the service' do
    run = converge(files_change: true)
    expect(service[:starts]).to eq(1)
    expect(run.events).not_to include('service[walden]:restart')
    expect(checks).to eq([[envdir, { enabled: true, running: true, starts: 1 }]])
  end

  it 'restarts a running agent once for a changed configuration, and checks it after the restart' do
    service[:running] = true
    run = converge(files_change: true)
    expect(service[:starts]).to eq(1)
    expect(run.events.grep(/\Aservice\[/)).to eq(['service[walden]:restart'])
    expect(run.events.last).to eq('ruby_block[walden check from inside the service]:run')
    expect(checks.size).to eq(1)
  end

  it 'leaves an unchanged running agent alone but still checks it' do
    service[:running] = true
    run = converge(files_change: false)
    expect(service[:starts]).to eq(0)
    expect(run.events.grep(/service\[/)).to eq([])
    expect(checks.size).to eq(1)
  end

  it 'creates the file store root and the drill directory for the service user before the agent starts' do
    run = converge(files_change: true)
    order = run.resources.map(&:id)
    %w[/srv/walden-store /srv/walden-drill].each do |path|
      expect(run.find("directory[#{path}]").props).to include(owner: 'postgres', group: 'postgres', mode: '0750',
                                                              recursive: true)
      expect(order.index("directory[#{path}]")).to be < order.index('service[walden start]')
    end
  end

  it 'makes the store and the drill directory writable in the drop-in' do
    run = converge(files_change: true)
    vars = run.find('template[/etc/systemd/system/walden.service.d/chef.conf]').props[:variables]
    expect(vars[:read_write_paths]).to eq(%w[-/srv/walden-drill -/srv/walden-store])
  end
end
